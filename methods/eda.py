"""`eda`: Easy Data Augmentation (Wei and Zou, EMNLP 2019), a pool method.

Each augmented sentence applies one of four edits to a sentence of `l` words, with
`n = max(1, int(alpha * l))` and `p = alpha`, as in the reference script (jasonwei20/eda_nlp):

- SR, synonym replacement: `n` non-stop-words replaced by WordNet synonyms (nlpaug's `SynonymAug`);
- RI, random insertion: a synonym of a random non-stop-word inserted at a random place, `n` times;
- RS, random swap: two random words swapped, `n` times;
- RD, random deletion: each word deleted with probability `p` (at least one word is kept).

Unlike the reference, which lowercases and keeps only letters, case and punctuation are kept: text
is split into word and punctuation tokens, only words are edited, and each punctuation token keeps
its original spacing, so "it 's a charming , funny movie ." stays space-tokenised and "Hello, world."
stays untokenised.

nlpaug does SR (POS-aware WordNet lookup, stop words skipped, capitalisation carried over) and the
WordNet lookup for RI. RI, RS and RD are written here because nlpaug lacks or changes them: it has
no insertion of WordNet synonyms; its swap only exchanges neighbours, may move punctuation and
re-cases the first word; its delete removes a fixed `ceil(p * l)` words rather than each word with
probability `p`, re-cases the first word, and un-deletes the second token when it deletes the first two.

Other departures from the reference: RI draws its source word among non-stop-words (the reference
draws any word); SR replaces the `n` chosen words that have synonyms (nlpaug does not go on to other
words when one has none); versions that edit nothing are skipped rather than returned.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import nltk
import nlpaug.augmenter.word as naw

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.fields import AT_LEAST_ONE, POSITIVE_FRACTION
from methods.base import MethodContext, PoolAugmenter, seeded_global_rngs
from methods.registry import param, register_method

# The reference script's stop words (never replaced by SR, never the source word of RI).
STOP_WORDS = frozenset("""
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
    hers herself it its itself they them their theirs themselves what which who whom this that these
    those am is are was were be been being have has had having do does did doing a an the and but if
    or because as until while of at by for with about against between into through during before after
    above below to from up down in out on off over under again further then once here there when where
    why how all any both each few more most other some such no nor not only own same so than too very
    s t can will just don should now
""".split())

OPERATIONS = ("sr", "ri", "rs", "rd")
NLTK_RESOURCES = ("corpora/wordnet", "taggers/averaged_perceptron_tagger_eng")

# A word, with inner apostrophes and hyphens ("don't", "well-known") and a leading apostrophe
# ("'s", "'90s"), or a run of other non-space characters (punctuation).
_TOKEN = re.compile(r"['’]?\w+(?:['’-]\w+)*|[^\w\s]+")
# What nlpaug's SR must leave alone: a stop word (any case) or a token without letters or digits.
# nlpaug tries the pattern on the token with and without surrounding spaces, hence the \s*.
_SKIP_FOR_SR = r"(?i)^\s*(?:[\W_]+|" + "|".join(sorted(STOP_WORDS)) + r")\s*$"

# Paper's recommended (alpha, augmented sentences per original) by training-set size: 500 examples
# (0.05, 16), 2,000 (0.05, 8), 5,000 and more (0.1, 4); boundaries roughly halfway in log scale.
_DEFAULTS_BY_SIZE = ((1_000, 0.05, 16), (3_500, 0.05, 8), (float("inf"), 0.1, 4))


@dataclass(frozen=True)
class EDAParams:
    """EDA's settings; None means the paper's recommendation for the training-set size."""

    alpha: float | None = param(
        None, "share of words edited (n = alpha * words, p = alpha); default by training-set size (paper): "
              "0.05 below 3,500 examples, else 0.1", range=POSITIVE_FRACTION)
    num_aug: int | None = param(
        None, "augmented sentences per original; default by training-set size (paper): 16 below 1,000 "
              "examples, 8 below 3,500, else 4", range=AT_LEAST_ONE)
    operations: str = param("sr,ri,rs,rd", "comma-separated edits to use: sr (synonym replacement), "
                                           "ri (random insertion), rs (random swap), rd (random deletion)")


def default_settings(train_size: int) -> tuple[float, int]:
    """The paper's (alpha, num_aug) for a training set of `train_size` examples."""
    return next((alpha, num_aug) for bound, alpha, num_aug in _DEFAULTS_BY_SIZE if train_size < bound)


def require_nltk_data() -> None:
    """Fail early, in one line, when NLTK cannot find WordNet or its POS tagger (nlpaug would
    otherwise try to download them in the middle of augmentation)."""
    for resource in NLTK_RESOURCES:
        try:
            nltk.data.find(resource)
        except LookupError:
            raise KdbenchError(
                f"EDA needs NLTK's {resource}, which is not in NLTK's data path: point NLTK_DATA at a folder "
                "that has it, or run `python -m nltk.downloader wordnet averaged_perceptron_tagger_eng`") from None


def is_word(token: str) -> bool:
    """Whether a token is a word (has a letter or digit) rather than punctuation."""
    return any(ch.isalnum() for ch in token)


def tokenize(text: str) -> tuple[list[str], list[tuple[bool, bool]]]:
    """Word and punctuation tokens of `text`, and for each punctuation token, in order, whether it
    touches the token before and the token after (no space between)."""
    tokens, glue = [], []
    for match in _TOKEN.finditer(text):
        tokens.append(match.group())
        if not is_word(match.group()):
            start, end = match.span()
            glue.append((start > 0 and not text[start - 1].isspace(), end < len(text) and not text[end].isspace()))
    return tokens, glue


def detokenize(tokens: list[str], glue: list[tuple[bool, bool]]) -> str:
    """Join edited tokens back into text. Edits never add, drop or reorder punctuation, so the k-th
    punctuation token takes the k-th spacing of `glue`; words are separated by one space."""
    spacing = iter(glue)
    pieces, touches_next = [], False
    for token in tokens:
        touches_previous, touches_after = next(spacing, (False, False)) if not is_word(token) else (False, False)
        if pieces and not (touches_next or touches_previous):
            pieces.append(" ")
        pieces.append(token)
        touches_next = touches_after
    return "".join(pieces)


@register_method("eda", label="EDA", kind="pool", params=EDAParams,
                 demo_params={"num_aug": 1},
                 description="EDA text editing: synonym replacement, random insertion, swap, deletion")
class EDA(PoolAugmenter):
    """EDA as a pool method; `augment` follows the reference script's `eda()` for each sentence."""

    def __init__(self, params: EDAParams, context: MethodContext):
        default_alpha, default_num_aug = default_settings(context.train_size)
        self.alpha = default_alpha if params.alpha is None else params.alpha
        self.copies = default_num_aug if params.num_aug is None else params.num_aug
        self.operations = tuple(name.strip() for name in params.operations.split(",") if name.strip())
        if not self.operations:
            raise KdbenchError(f"EDA's operations must name at least one of {', '.join(OPERATIONS)}")
        for name in self.operations:
            if name not in OPERATIONS:
                raise UnknownNameError("EDA operation", name, OPERATIONS)
        require_nltk_data()
        # Tokens reach nlpaug already split (joined by single spaces), so its own tokenizer, which
        # splits "it's" into three tokens, is bypassed.
        self._synonym_aug = naw.SynonymAug(aug_src="wordnet", stopwords_regex=_SKIP_FOR_SR,
                                           tokenizer=lambda text: text.split(" "), reverse_tokenizer=" ".join)
        self._edits: dict[str, Callable[[list[str], int, random.Random], list[str]]] = {
            "sr": self._replace_synonyms, "ri": self._insert_synonyms, "rs": self._swap, "rd": self._delete}

    def augment(self, sentences: list[str], copies: list[int], seed: int) -> list[list[str]]:
        """Up to `copies[i]` edited versions of each sentence (see `_augment_one`)."""
        return [[version for version, _ in versions] for versions in self.augment_tagged(sentences, copies, seed)]

    def augment_tagged(self, sentences: list[str], copies: list[int], seed: int) -> list[list[tuple[str, int]]]:
        """Each version with its edit, an index into `operations`: the learned augmentation policy draws edits."""
        rng = random.Random(seed)
        with seeded_global_rngs(rng.randrange(2**32)):  # nlpaug draws from the global generators
            return [self._augment_one(sentence, count, rng) for sentence, count in zip(sentences, copies)]

    def _augment_one(self, sentence: str, count: int, rng: random.Random) -> list[tuple[str, int]]:
        """The reference makes `count // k + 1` versions per operation (k operations), shuffles them
        and keeps `count`. Shuffling the plan first gives the same mix without making versions that
        would be thrown away; a version that edits nothing is skipped and the next one in the plan
        takes its place."""
        tokens, glue = tokenize(sentence)
        n_words = sum(map(is_word, tokens))
        if n_words == 0:
            return []
        n = max(1, int(self.alpha * n_words))
        plan = [name for name in self.operations for _ in range(count // len(self.operations) + 1)]
        rng.shuffle(plan)
        versions = []
        for name in plan:
            if len(versions) == count:
                break
            edited = self._edits[name](tokens, n, rng)
            if edited != tokens:
                versions.append((detokenize(edited, glue), self.operations.index(name)))
        return versions

    def _replace_synonyms(self, tokens: list[str], n: int, rng: random.Random) -> list[str]:
        """SR by nlpaug. Its edit count is ceil(aug_p * tokens), punctuation included; pinning
        aug_min = aug_max = n gives EDA's count. Multi-word synonyms come back as several words."""
        self._synonym_aug.aug_min = self._synonym_aug.aug_max = n
        return [token for token in self._synonym_aug.augment(" ".join(tokens))[0].split(" ") if token]

    def _synonyms(self, word: str) -> list[str]:
        """WordNet synonyms of `word` (any part of speech) through nlpaug's WordNet model, in a fixed
        order (no set, so the choice does not depend on string hashing)."""
        names = (name.replace("_", " ").replace("-", " ") for name in self._synonym_aug.model.predict(word))
        return [name for name in dict.fromkeys(names) if name.lower() != word.lower()]

    # Hand-written: nlpaug has no WordNet-based insertion.
    def _insert_synonyms(self, tokens: list[str], n: int, rng: random.Random) -> list[str]:
        """RI: `n` times, insert a synonym of a random non-stop-word before a random word or after the
        last word. As in the reference, an insertion is given up after 10 words without synonyms."""
        sources = [t for t in tokens if is_word(t) and t.lower() not in STOP_WORDS]
        edited = list(tokens)
        for _ in range(n if sources else 0):
            for _ in range(10):
                synonyms = self._synonyms(rng.choice(sources))
                if synonyms:
                    positions = [i for i, token in enumerate(edited) if is_word(token)]
                    edited.insert(rng.choice(positions + [positions[-1] + 1]), rng.choice(synonyms))
                    break
        return edited

    # Hand-written: nlpaug's swap only exchanges neighbours, may move punctuation and re-cases.
    def _swap(self, tokens: list[str], n: int, rng: random.Random) -> list[str]:
        """RS: `n` times, swap two words at random positions; punctuation stays in place."""
        positions = [i for i, token in enumerate(tokens) if is_word(token)]
        edited = list(tokens)
        for _ in range(n if len(positions) > 1 else 0):
            i, j = rng.sample(positions, 2)
            edited[i], edited[j] = edited[j], edited[i]
        return edited

    # Hand-written: nlpaug's delete removes a fixed number of words (see the module docstring).
    def _delete(self, tokens: list[str], n: int, rng: random.Random) -> list[str]:
        """RD: delete each word with probability alpha (`n` is unused); if every word would go, keep
        a random one, and never delete the only word."""
        positions = [i for i, token in enumerate(tokens) if is_word(token)]
        if len(positions) < 2:
            return list(tokens)
        deleted = {i for i in positions if rng.random() <= self.alpha}
        if len(deleted) == len(positions):
            deleted.discard(rng.choice(positions))
        return [token for i, token in enumerate(tokens) if i not in deleted]
