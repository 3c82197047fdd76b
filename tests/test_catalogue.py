"""The catalogue of built-in parts (bench/catalogue.json): what `kdbench list` reads instead of importing
every part. It must say what importing the parts says; when their sources change, the listing imports
them rather than show a stale catalogue."""

from __future__ import annotations

import json

from bench import catalogue
from bench.roles import LISTED
from bench.parts.registry import resolve


def test_the_catalogue_matches_the_parts():
    assert json.loads(catalogue.FILE.read_text()) == catalogue.make(), \
        "bench/catalogue.json is out of date: run `python -m bench.catalogue` and commit the file"


def test_a_listing_from_the_catalogue_equals_the_imported_one(monkeypatch):
    methods = resolve(LISTED["methods"])
    from_file = catalogue.listing(methods)
    assert [entry["name"] for entry in catalogue.listing(methods, "back-*")] == ["backtranslation"]  # by its alias
    monkeypatch.setattr(catalogue, "sources_hash", lambda registry: "changed")  # a part edited since
    assert catalogue.listing(methods) == from_file


def test_a_stale_catalogue_is_not_used(monkeypatch, tmp_path):
    stale = json.loads(catalogue.FILE.read_text())
    stale["schemes"]["parts"][0]["description"] = "an old description"
    monkeypatch.setattr(catalogue, "FILE", tmp_path / "catalogue.json")
    (tmp_path / "catalogue.json").write_text(json.dumps(stale))
    schemes = resolve(LISTED["schemes"])
    assert catalogue.listing(schemes)[0]["description"] == "an old description"  # still matches its sources
    stale["schemes"]["sources"] = "made from other sources"
    (tmp_path / "catalogue.json").write_text(json.dumps(stale))
    assert catalogue.listing(schemes)[0]["description"] != "an old description"
