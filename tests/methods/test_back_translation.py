"""Back-translation: Apertium's golden outputs and batch alignment, clear errors when an engine is
missing, and the Marian engine on a tiny random model (gibberish, but batched and seeded)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch
from transformers import AutoTokenizer, MarianConfig, MarianMTModel

import methods.back_translation as bt
from bench.parts.errors import KdbenchError
from bench.parts.tasks import get_task
from methods.base import MethodContext
from methods.registry import get_method

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None,
                                    reason="apertium is not installed (apt-get install apertium apertium-eng-spa)")


def make(**params) -> bt.BackTranslation:
    spec = get_method("backtranslation")
    return spec.implementation(spec.parse_params(params), MethodContext(get_task("sst2"), 10, "teacher"))


def test_registry_lists_the_params():
    spec = get_method("backtranslation")
    params = {p.name: p for p in spec.params}
    assert spec.kind == "pool"
    assert params["engine"].default == "apertium" and params["engine"].choices == ("apertium", "marian")
    assert params["temperature"].default == 0.8 and params["temperature"].type is float
    assert params["forward_model"].default is None and params["forward_model"].type is str
    assert {"source", "pivot", "backward_model", "top_k", "copies", "batch_size", "max_length"} <= set(params)


@needs_apertium
def test_apertium_golden_outputs():
    sentences = ["The cat sat on the mat.", "I don't like this movie at all.", "She reads a book every week.",
                 "the story is simple and the ending is sad"]
    assert make().augment(sentences, [1] * 4, seed=0) == [  # apertium 3.8.3, apertium-eng-spa 0.8.1
        ["The cat seated in the mat."], ["I no like this film at all."], ["It reads a book each week."],
        ["the history is simple and the end is sad"]]  # lower-cased like its input


@needs_apertium
def test_apertium_keeps_alignment_with_one_process_per_batch(monkeypatch):
    method = make()
    tricky = ['He said "stop" * now # 3 @ noon.', "Dr. Smith went to the U.S. today. Then home.", "I saw the",
              "red car", "a [bracket] ^caret$ /slash/ <tag> {brace} \\back ~ tilde", "...", "?", "x\n\ny"]
    sentences = [f"{tricky[i % len(tricky)]} {i}" for i in range(25)] + ["", "   "]
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(bt.subprocess, "run", lambda *args, **kwargs: calls.append(args) or real_run(*args, **kwargs))
    monkeypatch.setattr(bt, "APERTIUM_BATCH_SIZE", 10)
    outputs = method.augment(sentences, [3] * len(sentences), seed=0)
    assert len(calls) == 3  # 25 non-blank sentences in batches of 10
    assert outputs[-2:] == [[], []]
    for i, versions in enumerate(outputs[:25]):  # each sentence's number survives in its own translation
        assert len(versions) == 1 and versions[0].split()[-1].rstrip(".") == str(i), (sentences[i], versions)


def test_apertium_lost_alignment_raises(monkeypatch):
    monkeypatch.setattr(bt.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(
        args, 0, stdout="One.\n\nTwo three.\n", stderr=""))
    with pytest.raises(KdbenchError, match="2 paragraphs for 3 sentences"):
        bt.apertium_back_translate(["one", "two", "three"], "eng-spa", "spa-eng")


def test_missing_apertium_binary_names_the_packages(monkeypatch):
    monkeypatch.setattr(bt.shutil, "which", lambda name: None)
    with pytest.raises(KdbenchError, match="apt-get install apertium apertium-eng-spa"):
        make()


@needs_apertium
def test_missing_apertium_pair_names_the_package():
    with pytest.raises(KdbenchError, match="apt-get install apertium apertium-eng-fra"):
        make(pivot="fr")


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory, tokenizer_dir):
    """A random 1-layer MarianMT model with the WordPiece tokenizer: [CLS] starts the decoder,
    [SEP] ends the sentence, [PAD] pads."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = MarianConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.cls_token_id)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-marian")
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_marian_counts_determinism_and_rng(tiny_marian):
    method = make(engine="marian", forward_model=tiny_marian, backward_model=tiny_marian, copies=2,
                  batch_size=3, max_length=6)
    assert method.copies == 2
    sentences, copies = ["a good film", "the plot was dull", "", "fine acting", "so boring"], [2, 3, 2, 0, 1]
    state = torch.random.get_rng_state()
    first = method.augment(sentences, copies, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    assert [len(v) for v in first] == [2, 3, 0, 0, 1]
    assert all(text.strip() for versions in first for text in versions)
    assert method.augment(sentences, copies, seed=0) == first
    assert method.augment(sentences, copies, seed=1) != first
    assert len(set(first[1])) > 1  # copies are independent samples


def test_marian_missing_model_says_how_to_pass_a_folder(monkeypatch):
    monkeypatch.setattr("bench.parts.models.hub_reachable", lambda: False)
    with pytest.raises(KdbenchError) as error:
        make(engine="marian", pivot="fr")
    assert str(error.value) == (
        "translation model 'Helsinki-NLP/opus-mt-en-fr' not found (not a local folder nor in the HF cache, and the "
        "hub is unreachable or has no such model): offline, pass local folders saved by save_pretrained with "
        "--param forward_model=DIR backward_model=DIR")


def test_marian_batches_samples_with_its_settings_and_groups_by_sentence(tiny_marian):
    """With an echo model in place of the translator: each sentence's versions are its own text, cut to
    max_length pieces; texts go in batches of batch_size to generate(), which samples with the given
    temperature and top-k, one beam and at most max_length new tokens; special tokens are dropped."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_marian)
    seen = {"tokenizer": [], "generate": [], "decode": []}

    class Tokenizer:
        def __call__(self, texts, **settings):
            seen["tokenizer"].append(settings)
            return tokenizer(texts, **settings)

        def batch_decode(self, ids, **settings):
            seen["decode"].append(settings)
            return tokenizer.batch_decode(ids, **settings)

    class Echo:
        def generate(self, input_ids, attention_mask, **settings):
            seen["generate"].append((len(input_ids), settings))
            return input_ids

    method = make(engine="marian", forward_model=tiny_marian, backward_model=tiny_marian, batch_size=2,
                  max_length=5, temperature=0.7, top_k=9)
    method.__dict__["_translators"] = ((Tokenizer(), Echo()), (Tokenizer(), Echo()))
    sentences, copies = ["a good film", "the plot was dull and slow", "", "fine acting", "so boring"], [2, 3, 2, 0, 1]
    assert method.augment(sentences, copies, seed=0) == [
        ["a good film"] * 2, ["the plot was"] * 3, [], [], ["so boring"]]  # [CLS] + 3 pieces + [SEP]
    assert [size for size, _ in seen["generate"]] == [2, 2, 2] * 2  # 6 texts forward, 6 back
    assert all(settings == {"do_sample": True, "temperature": 0.7, "top_k": 9, "num_beams": 1, "max_new_tokens": 5}
               for _, settings in seen["generate"])
    assert all(s["truncation"] is True and s["max_length"] == 5 for s in seen["tokenizer"])
    assert all(s == {"skip_special_tokens": True} for s in seen["decode"])


@needs_apertium
def test_apertium_makes_one_version_and_skips_sentences_asking_for_none():
    method = make(engine="apertium", copies=3)
    assert method.copies == 1
    assert method.augment(["a good film", "so boring"], [0, 1], seed=0)[0] == []
    with pytest.raises(ValueError):
        method.augment(["a good film", "so boring"], [1], seed=0)  # one count per sentence


@pytest.mark.parametrize("installed, message", [
    ("", "apertium cannot translate xx-yy and back (installed directions: none): apt-get install apertium "
         "apertium-xx-yy (`apt-cache search apertium` lists the pairs; some packages name the languages in the "
         "other order)"),
    ("eng-spa\nxx-yy\n", "apertium cannot translate xx-yy and back (installed directions: eng-spa, xx-yy): "
                          "apt-get install apertium apertium-xx-yy (`apt-cache search apertium` lists the pairs; "
                          "some packages name the languages in the other order)")])
def test_a_missing_pair_or_direction_names_what_is_installed(monkeypatch, installed, message):
    """Codes outside the table are used as given; a pair needs both directions installed."""
    monkeypatch.setattr(bt.shutil, "which", lambda name: "/usr/bin/apertium")
    monkeypatch.setattr(bt.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, installed))
    with pytest.raises(KdbenchError) as error:
        bt.apertium_directions("xx", "yy")
    assert str(error.value) == message


def _apertium_answers(monkeypatch, returncode: int, stdout: str, stderr: str = "") -> None:
    monkeypatch.setattr(bt.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(
        args, returncode, stdout=stdout, stderr=stderr))


def test_apertium_failure_says_its_exit_code_and_the_end_of_its_errors(monkeypatch):
    _apertium_answers(monkeypatch, 3, "", stderr="\n  " + "x" * 400 + "mode spa-eng not found  \n")
    with pytest.raises(KdbenchError) as error:
        bt.apertium_back_translate(["one"], "eng-spa", "spa-eng")
    assert str(error.value) == "apertium failed (exit 3): " + ("x" * 400 + "mode spa-eng not found")[-300:]


def test_apertium_lost_alignment_message_is_whole(monkeypatch):
    _apertium_answers(monkeypatch, 0, "One.\n\nTwo three.\n")
    with pytest.raises(KdbenchError) as error:
        bt.apertium_back_translate(["one", "two", "three"], "eng-spa", "spa-eng")
    assert str(error.value) == ("apertium returned 2 paragraphs for 3 sentences, so translations cannot be matched "
                                "to sentences; please report the input batch")


def test_apertium_output_loses_only_its_newlines(monkeypatch):
    _apertium_answers(monkeypatch, 0, "\nX-ray  one.\n\nTwo X\n")
    assert bt.apertium_back_translate(["x-ray one", "two x"], "eng-spa", "spa-eng") == ["X-ray one.", "Two X"]


def test_marian_model_that_resolves_but_does_not_load_is_named(monkeypatch, tiny_marian):
    def unreadable(name, *args, **kwargs):
        raise OSError(f"no tokenizer files in {name}")

    method = make(engine="marian", forward_model=tiny_marian, backward_model=tiny_marian)
    monkeypatch.setattr(bt.AutoTokenizer, "from_pretrained", unreadable)
    with pytest.raises(KdbenchError) as error:
        method.augment(["a good film"], [1], seed=0)  # the translators load on first use
    assert str(error.value) == str(bt._not_found(tiny_marian))
    assert repr(tiny_marian) in str(error.value)
