"""EDA (methods/eda.py): golden outputs, determinism, what each edit may change, defaults, errors."""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from pathlib import Path

import nltk
import numpy as np
import pytest
import torch

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.tasks import get_task
from methods.base import MethodContext
from methods.eda import EDA, STOP_WORDS, EDAParams, default_settings, detokenize, is_word, tokenize
from methods.registry import get_method

SHARED_NLTK_DATA = Path(__file__).resolve().parents[3] / "shared" / "nltk_data"
SST2_STYLE = "it 's a charming , funny and often affecting journey ."
RAW = "The Eiffel Tower, in Paris (France), was finished in 1889."


@pytest.fixture(scope="module", autouse=True)
def nltk_data():
    """Make WordNet and the tagger findable: NLTK reads NLTK_DATA only when imported, so the
    folder also goes on nltk.data.path."""
    if os.environ.get("NLTK_DATA"):
        yield
        return
    if not SHARED_NLTK_DATA.is_dir():
        pytest.skip(f"NLTK_DATA is unset and {SHARED_NLTK_DATA} (WordNet, tagger) does not exist")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NLTK_DATA", str(SHARED_NLTK_DATA))
        patch.setattr(nltk.data, "path", [str(SHARED_NLTK_DATA), *nltk.data.path])
        yield


def make_eda(train_size: int = 10_000, **params) -> EDA:
    """EDA built as the harness builds it: its parameters checked by the registry (ranges included)."""
    return EDA(get_method("eda").parse_params(params), MethodContext(get_task("sst2"), train_size, "teacher"))


def augment(sentence: str, copies: int = 8, seed: int = 0, **params) -> list[str]:
    return make_eda(**params).augment([sentence], [copies], seed)[0]


def test_golden_outputs():
    sentences = [SST2_STYLE, RAW, "A quiet, beautifully acted drama about grief.", "great"]
    assert make_eda(alpha=0.2).augment(sentences, [4] * 4, seed=7) == [
        ["it 's a charming , funny and often affecting journeying .",
         "it 's a journey , funny and often affecting charming .",
         "it 's a charming , funny and frequently often affecting journey .",
         "it sorcerous 's a charming , funny and often affecting journey ."],
        ["The Eiffel Tower, Alexandre Gustave Eiffel in Paris (France), was finished in wind up 1889.",
         "The Eiffel in, in was (France), Paris finished Tower 1889.",
         "The Eiffel Tower, in stop Paris (France), was finished pillar in 1889.",
         "The Eiffel Tower, in Paris (Anatole france), was stop in 1889."],
        ["A, acted drama about grief.",
         "A quiet, beautifully acted drama about grief brokenheartedness.",
         "A quiet, attractively acted drama about grief.",
         "A quiet, beautifully about drama acted grief."],
        ["great swell", "not bad", "big great", "corking"],
    ]


def test_same_seed_same_output_and_global_rngs_untouched():
    eda = make_eda()
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    first = eda.augment([SST2_STYLE, RAW], [6, 6], seed=3)
    assert random.getstate() == states[0]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:3], states[1][1:3]))
    assert torch.equal(torch.random.get_rng_state(), states[2])
    assert make_eda().augment([SST2_STYLE, RAW], [6, 6], seed=3) == first
    assert eda.augment([SST2_STYLE, RAW], [6, 6], seed=4) != first


def test_copies_per_sentence_and_unchanged_versions_skipped():
    outputs = make_eda().augment([SST2_STYLE, RAW, "", " , ."], [3, 0, 5, 5], seed=0)
    assert [len(versions) for versions in outputs] == [3, 0, 0, 0]
    assert SST2_STYLE not in outputs[0]


def punctuation(text: str) -> str:
    return re.sub(r"[\w\s]", "", text)


@pytest.mark.parametrize("operation", ["rs", "rd"])
def test_case_punctuation_and_spacing_kept(operation):
    for version in augment(RAW, operations=operation):
        assert punctuation(version) == punctuation(RAW)
        assert not re.search(r"\s[,.)]|\(\s", version)  # no space before , . ) or after (
        assert set(re.findall(r"\w+", version)) <= set(re.findall(r"\w+", RAW))  # same case


def test_space_tokenised_text_stays_space_tokenised():
    for version in augment(SST2_STYLE, copies=12):
        assert version == " ".join(tokenize(version)[0])
        assert punctuation(version).replace("'", "") == ",."


def test_synonym_replacement_changes_only_non_stop_words():
    versions = augment(RAW, operations="sr")
    assert versions
    for version in versions:
        removed = Counter(tokenize(RAW)[0]) - Counter(tokenize(version)[0])
        assert removed and all(is_word(w) and w.lower() not in STOP_WORDS for w in removed)


def test_random_insertion_only_adds_words():
    original = tokenize(RAW)[0]
    for version in augment(RAW, operations="ri"):
        tokens = tokenize(version)[0]
        remaining = iter(tokens)
        assert all(token in remaining for token in original)  # the original is a subsequence
        assert len(tokens) > len(original)


def test_random_swap_keeps_words_and_punctuation_places():
    original = tokenize(RAW)[0]
    for version in augment(RAW, operations="rs"):
        tokens = tokenize(version)[0]
        assert sorted(tokens) == sorted(original) and tokens != original
        assert [t for t in tokens if not is_word(t)] == [t for t in original if not is_word(t)]
        assert all(is_word(a) == is_word(b) for a, b in zip(tokens, original))


def test_random_deletion_only_removes_words():
    original = re.findall(r"\w+", RAW)
    for version in augment(RAW, operations="rd", alpha=0.3):
        words = re.findall(r"\w+", version)
        remaining = iter(original)
        assert all(word in remaining for word in words)  # a subsequence of the original
        assert 0 < len(words) < len(original)
        assert punctuation(version) == punctuation(RAW)


@pytest.mark.parametrize("text", [SST2_STYLE, RAW, 'He said: "it\'s (not) well-known"... fine!', "a -- b",
                                  "A, b and c."])
def test_tokenize_round_trip(text):
    assert detokenize(*tokenize(text)) == text


@pytest.mark.parametrize("train_size, alpha, num_aug", [
    (500, 0.05, 16), (999, 0.05, 16), (1_000, 0.05, 8), (2_000, 0.05, 8), (3_500, 0.1, 4), (67_349, 0.1, 4)])
def test_defaults_by_training_set_size(train_size, alpha, num_aug):
    assert default_settings(train_size) == (alpha, num_aug)
    eda = make_eda(train_size)
    assert (eda.alpha, eda.copies) == (alpha, num_aug)


def test_explicit_parameters_override_defaults():
    eda = make_eda(500, alpha=0.3, num_aug=2, operations="rs, rd")
    assert (eda.alpha, eda.copies, eda.operations) == (0.3, 2, ("rs", "rd"))


@pytest.mark.parametrize("params, error", [
    ({"operations": "sr,swap"}, UnknownNameError), ({"operations": ""}, KdbenchError),
    ({"alpha": 0.0}, KdbenchError), ({"num_aug": 0}, KdbenchError)])
def test_invalid_parameters(params, error):
    with pytest.raises(error):
        make_eda(**params)


def test_invalid_operations_say_which_are_valid():
    with pytest.raises(KdbenchError) as caught:
        make_eda(operations=" , ")
    assert str(caught.value) == "EDA's operations must name at least one of sr, ri, rs, rd"
    with pytest.raises(UnknownNameError, match="^unknown EDA operation 'swap': valid: rd, ri, rs, sr$"):
        make_eda(operations="sr,swap")


def test_the_edits_at_their_edges():
    """Two words are enough to swap and to delete one; at alpha 1 deletion keeps one random word;
    insertion in a sentence of stop words does nothing, and gives up after 10 words without synonyms."""
    eda = make_eda(alpha=1.0)
    assert eda._swap(["good", "film", "."], 1, random.Random(0)) == ["film", "good", "."]
    for seed in range(5):
        kept = eda._delete(["good", "film", "today", "."], 1, random.Random(seed))
        assert len(kept) == 2 and kept[0] in ("good", "film", "today") and kept[1] == "."
    assert eda._delete(["good", "film"], 1, random.Random(0)) in (["good"], ["film"])
    assert eda._delete(["film", "!"], 1, random.Random(0)) == ["film", "!"]  # never the only word
    assert eda._insert_synonyms(["the", "a", "."], 3, random.Random(0)) == ["the", "a", "."]
    asked = []
    eda._synonyms = lambda word: asked.append(word) or []
    assert eda._insert_synonyms(["xqzv", "brrpt"], 2, random.Random(0)) == ["xqzv", "brrpt"]
    assert len(asked) == 2 * 10


def test_missing_wordnet_is_a_one_line_error_when_built(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(KdbenchError) as caught:
        make_eda()
    message = str(caught.value)
    assert "\n" not in message and "NLTK_DATA" in message
    assert message.endswith("point NLTK_DATA at a folder that has it, or run "
                            "`python -m nltk.downloader wordnet averaged_perceptron_tagger_eng`")


def test_registry_lists_parameters():
    spec = get_method("eda")
    assert spec.kind == "pool" and spec.implementation is EDA
    assert [(p.name, p.type, p.default) for p in spec.params] == [
        ("alpha", float, None), ("num_aug", int, None), ("operations", str, "sr,ri,rs,rd")]
    assert all(p.help for p in spec.params)
    assert spec.parse_params(["alpha=0.2", "num_aug=none"]) == EDAParams(alpha=0.2)


def test_a_pair_changes_one_side_and_the_pool_is_the_same_for_one_seed():
    import datasets

    from bench.pipeline.pools import generate_pool

    pairs = datasets.Dataset.from_dict({
        "text_a": ["A man is playing a large flute.", "Three boys are running through the park happily."],
        "text_b": ["A man is playing the guitar loudly.", "The children walk slowly in a small garden."],
        "label": [0, 1]})
    eda = make_eda(alpha=0.2, num_aug=4)
    pool = generate_pool(eda, pairs, seed=3)
    assert len(pool) > 0
    for row in pool:
        original = pairs[row["origin_id"]]
        assert (row["text_a"] == original["text_a"]) != (row["text_b"] == original["text_b"])
    assert generate_pool(make_eda(alpha=0.2, num_aug=4), pairs, seed=3).to_list() == pool.to_list()


def test_wordnet_names_become_plain_words():
    """WordNet joins a name's words with _ or - ("far-famed"); a synonym is inserted as words."""
    synonyms = make_eda()._synonyms("famous")
    assert "far famed" in synonyms and not any("-" in word or "_" in word for word in synonyms)
