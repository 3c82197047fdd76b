"""`mlm`: TinyBERT's data augmentation by masked-LM word replacement (Jiao et al., 2020), batched.

Semantics of TinyBERT's `data_augmentation.py`, per sentence:
  1. Split it into words with the generator tokenizer's basic split (whitespace and punctuation).
  2. For each word made of letters only and not in TinyBERT's stop-word list, find up to `top_k`
     candidates: if the generator tokenises it as one word piece, mask it and take the masked LM's
     top predictions; if several pieces, its nearest GloVe neighbours (cosine, among the
     `glove_vocab` most frequent GloVe words). A word with no candidates is left alone.
  3. Each of the `n_a` copies replaces each candidate word, with probability `p_t`, by one of its
     candidates chosen uniformly.
As in the script, the masked LM sees the masked sentence followed by the original one as a second
segment (`[CLS] masked [SEP] original [SEP]`), which steers predictions towards words that fit
the original word as well as the context.

Where this differs from the script, on purpose:
  - Batched: every masked word of every sentence is one row, rows of similar length are batched
    together, and the vocabulary projection runs at the masked position only. The script runs one
    forward (with the projection at every position) per word.
  - Masked-LM candidates are words: predictions that are not letters only (word pieces `##x`,
    special tokens, punctuation, numbers, `[unused]` slots) and the masked word itself are skipped,
    and the top `top_k` of the rest are kept; the script filters only `##` pieces out of its top K.
  - Text and case are kept: a copy is the input with the chosen words replaced in place, so
    spacing and punctuation are untouched and a copy with no replacement equals the input (the
    harness then drops it). The script joins lowercased basic tokens with spaces, which for GLUE's
    tokenised SST-2 and CoLA text gives the same words, but turns "don't" into "don ' t" elsewhere.
    A replacement takes the case of the word it replaces (Title, UPPER, or as predicted), which
    matters for cased teachers; the script title-cases GloVe neighbours of title-case words only.
  - Randomness: each sentence's copies come from a generator seeded by (seed, sentence text), so
    the output of a sentence does not depend on the other sentences in the call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE, PROBABILITY, Range
from bench.parts.generators import generator_name, load_generator, masked_lm_logits
from bench.parts.models import load_tokenizer
from methods.base import MethodContext, PoolAugmenter
from methods.glove import load_glove
from methods.registry import param, register_method

HUB_GENERATOR = "bert-base-uncased"  # TinyBERT's generator
# TinyBERT's StopWordsList: NLTK's English stop words plus "'s" and "'re"
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves this that that'll these
those am is are was were be been being have has had having do does did doing a an the and but if or because as
until while of at by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there all any both each few more most other some such no nor
not only own same so than too very s t can will just don don't should should've now d ll m o re ve y ain aren
aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't
mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't 's 're
""".split())
CHUNK = 1024  # sentences whose candidates are found together: bounds memory on large training sets
# N_a of TinyBERT's script per GLUE task; other tasks get the paper's 20
TASK_COPIES = {"cola": 30, "mnli": 10, "mrpc": 30, "sst2": 20, "stsb": 30, "qqp": 10, "qnli": 20, "rte": 30}


@dataclass(frozen=True)
class MLMParams:
    generator: str | None = param(None, f"masked LM (hub id or folder); default {HUB_GENERATOR} when the hub is "
                                        "reachable, else build one with `kdbench make-generator`")
    p_t: float = param(0.4, "probability of replacing each candidate word in a copy", range=PROBABILITY)
    n_a: int | None = param(None, "augmented copies per example (default: TinyBERT's per task: cola, mrpc, stsb, "
                                  "rte 30; sst2, qnli 20; mnli, qqp 10; others 20)", range=AT_LEAST_ONE)
    top_k: int = param(15, "candidates per word: masked-LM top K, or K nearest GloVe words", range=AT_LEAST_ONE)
    glove_vocab: int = param(100_000, "GloVe neighbours come from this many most frequent GloVe words",
                             range=AT_LEAST_ONE)
    batch_size: int = param(32, "masked words per generator forward (on 2 CPU cores 8 to 32 are equally fast)",
                            range=AT_LEAST_ONE)
    max_length: int = param(128, "sentence length in word pieces seen by the generator; later words are kept",
                            range=Range(3))  # [CLS], one word piece, [SEP]: the least that has a word to replace


def is_word(text: str) -> bool:
    """Letters a-z only, in either case: TinyBERT's test of a replaceable word."""
    return text.isascii() and text.isalpha()


def match_case(candidate: str, word: str) -> str:
    """`candidate` in the case of the `word` it replaces: UPPER, Title, or as it is."""
    if len(word) > 1 and word.isupper():
        return candidate.upper()
    if word[0].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


@dataclass
class MaskedRow:
    """One generator input: a sentence with one word piece masked, and which word that is."""

    sentence: int
    word: int
    input_ids: list[int]
    token_type_ids: list[int]
    position: int  # of the mask
    original_id: int  # the masked piece, never its own candidate


@dataclass
class SentenceCandidates:
    """A sentence's replaceable words (character spans) and each one's candidates."""

    spans: list[tuple[int, int]]
    options: list[list[str]]


@register_method("mlm", label="masked-LM", kind="pool", params=MLMParams,
                 demo_params={"n_a": 1},
                 description="TinyBERT masked-LM generation: replace words by masked-LM predictions (single word "
                             "pieces) or GloVe neighbours (longer words), N_a copies per example")
class MaskedLMGeneration(PoolAugmenter):
    """TinyBERT's augmentation; see the module docstring."""

    def __init__(self, params: MLMParams, context: MethodContext):
        self.params = params
        name = generator_name(params.generator, HUB_GENERATOR)
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(name)
        if type(self.tokenizer.backend_tokenizer.model).__name__ != "WordPiece":
            raise KdbenchError(f"generator {name} must use a WordPiece (BERT-style) tokenizer")
        self.model = load_generator(name).to(context.device)
        self.glove = load_glove(params.glove_vocab)
        self.copies = params.n_a if params.n_a is not None else TASK_COPIES.get(context.task.name, 20)
        vocabulary = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        size = self.model.get_output_embeddings().weight.shape[0]  # may exceed the tokenizer's (padded)
        self.not_words = torch.tensor([i >= len(vocabulary) or not is_word(vocabulary[i]) for i in range(size)],
                                      device=context.device)

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        results = []
        progress = tqdm(total=len(sentences), desc="mlm augmentation", unit="sentence", disable=len(sentences) <= CHUNK)
        for start in range(0, len(sentences), CHUNK):
            chunk = sentences[start:start + CHUNK]
            for text, n, found in zip(chunk, copies[start:start + CHUNK], self.candidates(chunk)):
                results.append(self.versions(text, found, n, seed))
            progress.update(len(chunk))
        progress.close()
        return results

    def versions(self, text: str, found: SentenceCandidates, n: int, seed: int) -> list[str]:
        """`n` copies of `text`, each candidate word replaced with probability p_t."""
        rng = random.Random(f"{seed}\0{text}")
        versions = []
        for _ in range(n):
            replaced = {}
            for span, options in zip(found.spans, found.options):
                choice = rng.choice(options)  # drawn before the coin, as in TinyBERT's script
                if rng.random() < self.params.p_t:
                    replaced[span] = choice
            versions.append(_splice(text, replaced))
        return versions

    def candidates(self, sentences: list[str]) -> list[SentenceCandidates]:
        """Each sentence's replaceable words and their candidates (masked LM or GloVe)."""
        pre_tokenize = self.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str
        words = [pre_tokenize(text) for text in sentences]
        encoded = self.tokenizer([[w for w, _ in ws] for ws in words], is_split_into_words=True)
        limit = self.params.max_length - 1  # pieces past it are cut, with the words they belong to
        rows, glove_words = [], {}
        for s, ws in enumerate(words):
            input_ids = encoded["input_ids"][s]
            input_ids = input_ids[:limit] + input_ids[-1:] if len(input_ids) > limit + 1 else input_ids
            pieces: dict[int, list[int]] = {}
            for position, w in enumerate(encoded.word_ids(s)):
                if w is not None:
                    pieces.setdefault(w, []).append(position)
            for w, positions in pieces.items():
                word = ws[w][0]
                if not is_word(word) or word.lower() in STOP_WORDS or positions[-1] >= limit:
                    continue
                if len(positions) == 1:
                    rows.append(self.masked_row(input_ids, s, w, positions[0]))
                else:
                    glove_words[(s, w)] = word.lower()
        found = {(row.sentence, row.word): options for row, options in zip(rows, self.predict(rows))}
        neighbours = self.glove.neighbours(list(glove_words.values()), self.params.top_k)
        found.update({key: neighbours[word] for key, word in glove_words.items() if word in neighbours})
        results = [SentenceCandidates([], []) for _ in sentences]
        for (s, w), options in sorted(found.items()):
            word, span = words[s][w]
            results[s].spans.append(span)
            results[s].options.append([match_case(option, word) for option in options])
        return results

    def masked_row(self, input_ids: list[int], sentence: int, word: int, position: int) -> MaskedRow:
        """`[CLS] sentence with the piece at `position` masked [SEP] original sentence [SEP]`."""
        masked = list(input_ids)
        masked[position] = self.tokenizer.mask_token_id
        second = input_ids[1:]  # the original without its [CLS], ending in [SEP]
        return MaskedRow(sentence, word, masked + second, [0] * len(masked) + [1] * len(second), position,
                         input_ids[position])

    @torch.inference_mode()
    def predict(self, rows: list[MaskedRow]) -> list[list[str]]:
        """The masked LM's top-K candidate words for each row, batched: rows sorted by length so a
        batch pads little, and the vocabulary projection only at the masked positions."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        results: list[list[str]] = [[] for _ in rows]
        device = self.not_words.device
        for start in range(0, len(order), self.params.batch_size):
            batch = [rows[i] for i in order[start:start + self.params.batch_size]]
            inputs = _pad(batch, self.tokenizer.pad_token_id, device)
            selected = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
            selected[torch.arange(len(batch)), [row.position for row in batch]] = True
            logits = masked_lm_logits(self.model, inputs, selected).float()
            logits[:, self.not_words] = -torch.inf
            logits[torch.arange(len(batch)), [row.original_id for row in batch]] = -torch.inf
            top = logits.topk(self.params.top_k, dim=-1)
            for i, values, ids in zip(order[start:start + len(batch)], top.values.tolist(), top.indices.tolist()):
                results[i] = self.tokenizer.convert_ids_to_tokens([t for t, v in zip(ids, values) if v > -torch.inf])
        return results


def _pad(rows: list[MaskedRow], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded input ids, token types and attention mask of a batch of rows."""
    length = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    attention_mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        input_ids[i, :n] = torch.tensor(row.input_ids)
        token_type_ids[i, :n] = torch.tensor(row.token_type_ids)
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids.to(device), "token_type_ids": token_type_ids.to(device),
            "attention_mask": attention_mask.to(device)}


def _splice(text: str, replaced: dict[tuple[int, int], str]) -> str:
    """`text` with each character span replaced by its new word."""
    pieces, end = [], 0
    for (start, stop), word in sorted(replaced.items()):
        pieces += [text[end:start], word]
        end = stop
    return "".join(pieces + [text[end:]])
