"""`backtranslation`: paraphrase each sentence by translating it to a pivot language and back.

Two engines:
  - `apertium`: the rule-based Apertium engine (Debian packages `apertium` and a language pair such
    as `apertium-eng-spa`). Offline, fast and deterministic, so it gives one version per sentence.
    A batch of sentences goes through one `apertium -u SRC-PIV | apertium -u PIV-SRC` pipeline,
    one sentence per paragraph (see `_apertium_batch` for why paragraphs).
  - `marian`: any `transformers` seq2seq translation model pair (MarianMT's opus-mt models by
    default). Both directions sample with a temperature, as UDA (Xie et al., 2020) does with
    temperature 0.8, so each copy of a sentence is an independent paraphrase.

Outputs get single spaces, and are lower-cased when their input has no capital letter (SST-2's
text is lower-cased; translators capitalise the first word), so case alone never makes a version.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE
from bench.parts.models import resolve_model
from methods.base import MethodContext, PoolAugmenter, seeded_global_rngs
from methods.registry import param, register_method

# ISO 639-1 code -> Apertium's ISO 639-3 code, for the languages Apertium pairs with English.
APERTIUM_CODES = {"en": "eng", "es": "spa", "fr": "fra", "de": "deu", "ca": "cat", "gl": "glg", "eu": "eus",
                  "eo": "epo", "pt": "por", "it": "ita", "nl": "nld", "is": "isl", "mk": "mkd", "sh": "hbs"}
APERTIUM_BATCH_SIZE = 2000  # sentences per apertium process: the pipeline starts in ~0.3 s, then ~1000/s
PARAGRAPH = "\n\n"


@dataclass(frozen=True)
class BackTranslationParams:
    engine: str = param("apertium", "translation engine: apertium (rule-based, offline, deterministic) or "
                        "marian (transformers seq2seq models, sampled)", choices=("apertium", "marian"))
    source: str = param("en", "language of the training text (2-letter code, or Apertium's 3-letter one)")
    pivot: str = param("es", "language translated to and back from (UDA used fr, Glitter de)")
    forward_model: str | None = param(None, "marian: source->pivot model, a local folder or hub id "
                                      "(default Helsinki-NLP/opus-mt-{source}-{pivot})")
    backward_model: str | None = param(None, "marian: pivot->source model, a local folder or hub id "
                                       "(default Helsinki-NLP/opus-mt-{pivot}-{source})")
    temperature: float = param(0.8, "marian sampling temperature, both directions (UDA: 0.8)", range=POSITIVE)
    top_k: int = param(0, "marian: sample from the k likeliest tokens only; 0 samples from all (as UDA)",
                       range=NON_NEGATIVE)
    copies: int = param(1, "back-translations per sentence (marian; apertium is deterministic and "
                        "gives one whatever this says)", range=AT_LEAST_ONE)
    batch_size: int = param(32, "marian: sentences per generate() call", range=AT_LEAST_ONE)
    max_length: int = param(128, "marian: longest input and translation, in tokens", range=AT_LEAST_ONE)


@register_method("backtranslation", label="back-translation", kind="pool", params=BackTranslationParams,
                 demo_params={"engine": "apertium"},
                 aliases=("back-translation",), description="paraphrases by translating to a pivot language and back (Apertium or MarianMT)")
class BackTranslation(PoolAugmenter):
    """Back-translation with the engine chosen in `params`; checks that the engine is usable on creation."""

    def __init__(self, params: BackTranslationParams, context: MethodContext):
        self.params = params
        self.device = context.device
        if params.engine == "apertium":
            self.copies = 1
            self.directions = apertium_directions(params.source, params.pivot)
        else:
            self.copies = params.copies
            forward = params.forward_model or f"Helsinki-NLP/opus-mt-{params.source}-{params.pivot}"
            backward = params.backward_model or f"Helsinki-NLP/opus-mt-{params.pivot}-{params.source}"
            self.model_names = _resolve_translation_model(forward), _resolve_translation_model(backward)

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        """`copies[i]` back-translations of `sentences[i]` (one with apertium); none for blank sentences."""
        wanted = [i for i, (text, n) in enumerate(zip(sentences, copies, strict=True)) if n > 0 and text.strip()]
        texts = [" ".join(sentences[i].split()) for i in wanted]
        if self.params.engine == "apertium":
            versions = [[text] for text in apertium_back_translate(texts, *self.directions)]
        else:
            versions = self._marian(texts, [copies[i] for i in wanted], seed)
        result: list[list[str]] = [[] for _ in sentences]
        for i, outputs in zip(wanted, versions):
            result[i] = [_match_case(sentences[i], text) for text in outputs]
        return result

    @functools.cached_property
    def _translators(self) -> tuple[tuple, tuple]:
        """(tokenizer, model) forward and backward, loaded on first use: a cached pool never needs them."""
        return _load_translator(self.model_names[0], self.device), _load_translator(self.model_names[1], self.device)

    def _marian(self, texts: list[str], copies: list[int], seed: int) -> list[list[str]]:
        """Sample one pivot translation per copy, then one back-translation of each pivot."""
        repeated = [text for text, n in zip(texts, copies) for _ in range(n)]
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # loading draws random initial weights; sampling, on CUDA
            forward, backward = self._translators
            with seeded_global_rngs(seed):
                pivots = self._translate(forward, repeated)
                outputs = self._translate(backward, pivots)
        grouped, start = [], 0
        for n in copies:
            grouped.append(outputs[start:start + n])
            start += n
        return grouped

    def _translate(self, translator: tuple, texts: list[str]) -> list[str]:
        """One sampled translation of each text, `batch_size` texts per generate() call."""
        tokenizer, model = translator
        p = self.params
        translations = []
        for start in range(0, len(texts), p.batch_size):
            inputs = tokenizer(texts[start:start + p.batch_size], return_tensors="pt", padding=True,
                               truncation=True, max_length=p.max_length,
                               return_token_type_ids=False).to(self.device)
            with torch.inference_mode():
                generated = model.generate(**inputs, do_sample=True, temperature=p.temperature, top_k=p.top_k,
                                           num_beams=1, max_new_tokens=p.max_length)
            translations += tokenizer.batch_decode(generated, skip_special_tokens=True)
        return translations


def _match_case(source: str, output: str) -> str:
    """`output` with single spaces, lower-cased if `source` has no capital letter."""
    output = " ".join(output.split())
    return output if any(c.isupper() for c in source) else output.lower()


# --- apertium ----------------------------------------------------------------------------------


def _install_hint(source: str, pivot: str) -> str:
    return (f"apt-get install apertium apertium-{source}-{pivot} (`apt-cache search apertium` lists the "
            "pairs; some packages name the languages in the other order)")


def apertium_directions(source: str, pivot: str) -> tuple[str, str]:
    """Apertium's mode names for source->pivot and pivot->source; a KdbenchError naming the package
    to install if the `apertium` binary or the language pair is missing."""
    source3, pivot3 = APERTIUM_CODES.get(source, source), APERTIUM_CODES.get(pivot, pivot)
    if shutil.which("apertium") is None:
        raise KdbenchError(f"back-translation with engine=apertium needs the apertium program: "
                           f"{_install_hint(source3, pivot3)}")
    listing = subprocess.run(["apertium", "-l"], capture_output=True, encoding="utf-8").stdout.split()
    for a, b in ((source3, pivot3), (source, pivot)):  # pairs use 3-letter codes, a few older ones 2-letter
        if f"{a}-{b}" in listing and f"{b}-{a}" in listing:
            return f"{a}-{b}", f"{b}-{a}"
    raise KdbenchError(f"apertium cannot translate {source3}-{pivot3} and back (installed directions: "
                       f"{', '.join(listing) or 'none'}): {_install_hint(source3, pivot3)}")


def apertium_back_translate(sentences: list[str], forward: str, backward: str) -> list[str]:
    """The back-translation of each sentence, `APERTIUM_BATCH_SIZE` sentences per apertium process."""
    return [text for start in range(0, len(sentences), APERTIUM_BATCH_SIZE)
            for text in _apertium_batch(sentences[start:start + APERTIUM_BATCH_SIZE], forward, backward)]


def _apertium_batch(sentences: list[str], forward: str, backward: str) -> list[str]:
    """Back-translate single-line, non-blank sentences through one apertium pipeline.

    Each sentence is a paragraph of its own. Apertium's text deformatter keeps every run of
    newlines as a block of formatting that comes out unchanged, in order, and ends a sentence at
    each blank line, so words are not reordered across it; the output therefore splits back on
    blank lines into one translation per input. (Single newlines do not work: Apertium reorders
    words across them, and `-f line` drops final full stops. Null-flush mode, `-z`, keeps
    boundaries too but needs the stream format hand-escaped, and gives the same translations.)
    Apertium's part-of-speech tagger does carry a little context from one sentence into the next,
    so about one sentence in 30 is translated slightly differently than it would be alone.
    A count that does not match raises instead of misaligning."""
    if not sentences:
        return []
    command = f"apertium -u {shlex.quote(forward)} | apertium -u {shlex.quote(backward)}"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], input=PARAGRAPH.join(sentences) + "\n",
                          capture_output=True, encoding="utf-8")
    if done.returncode != 0:
        raise KdbenchError(f"apertium failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    outputs = done.stdout.strip("\n").split(PARAGRAPH)
    if len(outputs) != len(sentences):
        raise KdbenchError(f"apertium returned {len(outputs)} paragraphs for {len(sentences)} sentences, so "
                           "translations cannot be matched to sentences; please report the input batch")
    return [" ".join(text.split()) for text in outputs]


# --- marian ------------------------------------------------------------------------------------


def _not_found(name: str) -> KdbenchError:
    return KdbenchError(f"translation model {name!r} not found (not a local folder nor in the HF cache, and the "
                        "hub is unreachable or has no such model): offline, pass local folders saved by "
                        "save_pretrained with --param forward_model=DIR backward_model=DIR")


def _resolve_translation_model(name: str) -> str:
    """A folder or hub id that `from_pretrained` can load, or a KdbenchError saying how to pass one."""
    if Path(name).expanduser().exists():
        return resolve_model(name)  # a folder: its own error (e.g. no config.json) says it best
    try:
        return resolve_model(name)
    except KdbenchError:
        raise _not_found(name) from None


def _load_translator(name: str, device: torch.device) -> tuple:
    """(tokenizer, model in eval mode on `device`) of a seq2seq translation model."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSeq2SeqLM.from_pretrained(name)
    except OSError:
        raise _not_found(name) from None
    return tokenizer, model.to(device).eval()
