"""What a search is about, by content rather than by path, so workers on different machines agree.

A study's key used to hash the config as typed, folder paths included: two machines with the GLUE
files or the teacher in different folders ran separate searches without a word. Here a model
folder stands for the hash of its weights (`folder_fingerprint`), a hub id or alias for itself,
and the data for the hash of the rows a run reads (after its subset and label noise), wherever
they were loaded from. A study stores this `content`; a worker whose teacher or data hashes
otherwise refuses to join it (`check_content`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

from bench.parts.errors import KdbenchError
from bench.pipeline.cache import dataset_fingerprint, digest
from bench.pipeline.config import DataConfig, RunConfig, identity
from bench.pipeline.data import load_data
from bench.roles import ROLES

WEIGHT_FILES = ("*.safetensors", "*.bin")  # what save_pretrained writes weights to
PATH_FIELDS = {"data_dir": None, "train_file": None, "validation_file": None}  # DataConfig: stood for by `data`


@functools.lru_cache(maxsize=32)  # an ablation asks once per variant
def folder_fingerprint(folder: str) -> str:
    """A hash of a model folder's config.json and weight files (whatever else it holds)."""
    h = hashlib.blake2b(digest_size=12)
    folder = Path(folder)
    for path in [folder / "config.json", *sorted(p for pattern in WEIGHT_FILES for p in folder.glob(pattern))]:
        h.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def model_content(name: str | None) -> str | None:
    """A model as a study keys it: `weights:HASH` for a local folder, else the hub id or alias given."""
    if name is None or not Path(name).expanduser().is_dir():
        return name
    return f"weights:{folder_fingerprint(str(Path(name).expanduser().resolve()))}"


def data_content(config: DataConfig) -> str:
    """A hash of every split's rows as a run reads them (subset and label noise applied)."""
    return _data_content(json.dumps(dataclasses.asdict(config), sort_keys=True))


@functools.lru_cache(maxsize=8)
def _data_content(config_json: str) -> str:  # an ablation asks once per variant
    data = load_data(DataConfig(**json.loads(config_json)))
    return digest({name: dataset_fingerprint(ds) for name, ds in sorted(data.splits.items())})


def study_content(config: RunConfig) -> dict[str, str | None]:
    """What a search's runs read besides their settings: the data's and the teacher's content."""
    return {"data": data_content(config.data), "teacher": model_content(config.teacher)}


def keyed_settings(config: RunConfig) -> dict:
    """The config as a study key sees it: no folders (they are in `study_content`), no output or
    cache places, and a model folder among the parts' parameters (a pre-trained student's included) by
    its weights. Give it parsed parameters (bench.store.search.with_parsed_params), so `eps=1e-5` typed
    and written in a spec agree."""
    by_content = {role.params: _by_content(getattr(config, role.params)) for role in ROLES}
    return identity(dataclasses.replace(config, output_dir=None, cache_dir=None, resume=False, teacher=None,
                                        data=dataclasses.replace(config.data, **PATH_FIELDS), **by_content))


def _by_content(params: dict) -> dict:
    return {k: model_content(v) if isinstance(v, str) else v for k, v in params.items()}


def check_content(study: str, stored: dict, local: dict) -> None:
    """Refuse to run `study` with data or a teacher other than the study's: one line saying which."""
    for what, hint in (("data", "give --data-dir the GLUE files the study was started with"),
                       ("teacher", "give --teacher a copy of the study's teacher folder")):
        if stored.get(what) != local.get(what):
            raise KdbenchError(f"this worker's {what} differs from search {study}'s ({local.get(what)} here, "
                               f"{stored.get(what)} in the study): {hint}")
