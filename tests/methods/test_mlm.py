"""The `mlm` pool method (TinyBERT's masked-LM augmentation) on a tiny random BertForMaskedLM."""

from __future__ import annotations

import re

import pytest
import torch

from bench.parts.errors import KdbenchError
from bench.parts.tasks import get_task
from methods.base import MethodContext
from methods.glove import load_glove
from methods.mlm import STOP_WORDS, MaskedLMGeneration, MLMParams, is_word, match_case
from methods.registry import get_method

SENTENCES = ["the acting was superb and the story quite charming .",
             "A dull , boring plot : I didn't like it at all in 2019 !",
             "an unbelievably disheartening film"]


def make(generator, task="sst2", **params) -> MaskedLMGeneration:
    return MaskedLMGeneration(MLMParams(generator=str(generator), **params), MethodContext(get_task(task), 100, "t"))


def one_forward_per_word(model, tokenizer, sentence: str, top_k: int) -> dict[int, list[str]]:
    """Reference for single-piece words, as TinyBERT's script computes it: per word, one forward of
    `[CLS] masked [SEP] original [SEP]` with logits at every position, then the top K word
    predictions at the mask (letters only, not the word itself). Keys are word indices."""
    words = [w for w, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(sentence)]
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    not_words = torch.tensor([not is_word(token) for token in vocabulary])
    pieces = [tokenizer.tokenize(word) for word in words]
    original = [tokenizer.convert_tokens_to_ids(p) for p in pieces]
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    flat = [i for ids in original for i in ids]
    found = {}
    for w, word in enumerate(words):
        if not is_word(word) or word.lower() in STOP_WORDS or len(original[w]) != 1:
            continue
        position = 1 + sum(len(ids) for ids in original[:w])
        masked = [cls, *flat, sep]
        masked[position] = mask
        input_ids = masked + flat + [sep]
        token_type_ids = [0] * len(masked) + [1] * (len(flat) + 1)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([input_ids]), token_type_ids=torch.tensor([token_type_ids])).logits
        scores = logits[0, position].clone()
        scores[not_words] = -torch.inf
        scores[original[w][0]] = -torch.inf
        found[w] = tokenizer.convert_ids_to_tokens(scores.topk(top_k).indices.tolist())
    return found


def candidates_by_word(method: MaskedLMGeneration, sentence: str) -> dict[int, list[str]]:
    """`method.candidates` keyed by word index instead of character span."""
    spans = [span for _, span in method.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(sentence)]
    found = method.candidates([sentence])[0]
    return {spans.index(span): options for span, options in zip(found.spans, found.options)}


def test_registered_as_pool_method():
    spec = get_method("mlm")
    assert spec.kind == "pool"
    assert spec.parse_params(["p_t=0.2", "n_a=none"]) == MLMParams(p_t=0.2)


GOLDEN = [  # seed 0, 3 copies; the tiny model is random, so the masked-LM words are too
    ["the acting was superb and the perimeter bouts themed .",
     "the acting was raider and the story quite charming .",
     "the acting was superb and the story quite warmth ."],
    ["A dull , telecom warmth : I didn't synchronized it at all in 2019 !",
     "A brother , boring plot : I didn't like it at all in 2019 !",
     "A uranium , boring plot : I didn't rearview it at all in 2019 !"],
    ["an unbelievably gratifying film",  # GloVe neighbours: "disheartening" is several word pieces
     "an unbelievably disheartening film",
     "an incredibly disheartening film"],
]


def test_golden_outputs(tiny_generator):
    assert make(tiny_generator, n_a=3).augment(SENTENCES, [3, 3, 3], seed=0) == GOLDEN


def test_deterministic_and_independent_of_the_other_sentences(tiny_generator):
    method = make(tiny_generator)
    first = method.augment(SENTENCES, [5, 5, 5], seed=3)
    assert method.augment(SENTENCES, [5, 5, 5], seed=3) == first
    assert method.augment(SENTENCES[1:2], [5], seed=3) == first[1:2]
    assert method.augment(SENTENCES, [5, 5, 5], seed=4) != first


def test_copies_per_task(tiny_generator):
    assert make(tiny_generator, task="mnli").copies == 10
    assert make(tiny_generator, task="rte").copies == 30
    assert make(tiny_generator, task="sst2", n_a=4).copies == 4
    out = make(tiny_generator).augment(SENTENCES[:2], [2, 0], seed=0)
    assert [len(versions) for versions in out] == [2, 0]


def test_only_content_words_are_replaced(tiny_generator):
    """Stop words, punctuation and numbers stay; with p_t = 1 every other word is replaced, in place."""
    method = make(tiny_generator, p_t=1.0)
    sentence = SENTENCES[1]
    found = method.candidates([sentence])[0]
    replaceable = [sentence[a:b] for a, b in found.spans]
    assert replaceable == ["dull", "boring", "plot", "like"]  # A, I, didn't, it, at, all, in: stop words
    pattern, end = "", 0
    for a, b in found.spans:
        pattern += re.escape(sentence[end:a]) + "([A-Za-z]+)"
        end = b
    pattern += re.escape(sentence[end:])
    for version in method.augment([sentence], [10], seed=0)[0]:
        match = re.fullmatch(pattern, version)
        assert match, version
        assert all(new != old for new, old in zip(match.groups(), replaceable))


def test_multi_piece_words_get_glove_neighbours(tiny_generator):
    method = make(tiny_generator, top_k=5)
    assert len(method.tokenizer.tokenize("disheartening")) > 1
    assert method.tokenizer.tokenize("film") == ["film"]
    found = candidates_by_word(method, "Disheartening film")
    glove = load_glove(100_000)
    assert found[0] == [word.title() for word in glove.neighbours(["disheartening"], 5)["disheartening"]]
    assert len(found[1]) == 5 and found[1] != glove.neighbours(["film"], 5)["film"]  # one piece: the masked LM


def test_glove_neighbours_are_nearest_by_cosine():
    glove = load_glove(100_000)
    found = glove.neighbours(["good", "terrible", "notaglovewordzz"], 3)
    assert set(found) == {"good", "terrible"}
    scores = glove.unit @ glove.unit[glove.index["good"]]
    expected = [glove.words[i] for i in scores.argsort()[::-1] if glove.words[i] != "good"][:3]
    assert found["good"] == expected


def test_batched_candidates_equal_one_forward_per_word(tiny_generator):
    method = make(tiny_generator, batch_size=4)  # several batches of rows from different sentences
    for sentence in SENTENCES:
        reference = one_forward_per_word(method.model, method.tokenizer, sentence, 15)
        found = candidates_by_word(method, sentence)
        assert reference and {w: found[w] for w in reference} == reference


def test_match_case():
    assert [match_case("good", w) for w in ("bad", "Bad", "BAD", "OK", "A")] == ["good", "Good", "GOOD", "GOOD",
                                                                                "Good"]


def test_copies_per_task_and_the_papers_default_elsewhere(tiny_generator):
    assert make(tiny_generator, task="rte").copies == 30 and make(tiny_generator, task="qqp").copies == 10
    assert make(tiny_generator, task="wnli").copies == 20  # not in TinyBERT's table: its default N_a


CONTENT_WORDS = "film movie actor story scene music plot ending camera script drama".split()


@pytest.mark.parametrize("n_words", range(5, 12))
def test_a_long_sentence_is_cut_to_max_length_pieces(tiny_generator, n_words):
    """With max_length 8 the generator sees [CLS], the first 6 pieces and [SEP]: the words in them get
    the candidates they would get in the sentence cut there, and later words get none."""
    method = make(tiny_generator, max_length=8)
    found = candidates_by_word(method, " ".join(CONTENT_WORDS[:n_words]))
    cut = " ".join(CONTENT_WORDS[:min(n_words, 6)])
    assert found == one_forward_per_word(method.model, method.tokenizer, cut, method.params.top_k)


def test_no_generator_offline_says_how_to_build_one(monkeypatch, tiny_generator):
    monkeypatch.setattr("bench.parts.generators.hub_reachable", lambda: False)
    with pytest.raises(KdbenchError, match="the default generator bert-base-uncased cannot be downloaded: build one "
                                           "offline with `kdbench make-generator"):
        MaskedLMGeneration(MLMParams(), MethodContext(get_task("sst2"), 100, "t"))


def test_encoder_without_masked_lm_head_is_refused(tiny_encoder):
    with pytest.raises(KdbenchError, match="no trained masked-LM head.*make-generator"):
        make(tiny_encoder)


def test_a_batch_of_rows_is_right_padded_with_its_mask():
    from methods.mlm import MaskedRow, _pad

    rows = [MaskedRow(0, 0, [101, 7, 102], [0, 0, 1], 1, 7),
            MaskedRow(0, 1, [101, 8, 9, 102, 5], [0, 0, 0, 1, 1], 2, 9)]
    batch = _pad(rows, 0, torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0, 0], [101, 8, 9, 102, 5]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 0, 0], [0, 0, 0, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}


def test_a_generator_without_a_wordpiece_tokenizer_is_refused(monkeypatch, tiny_generator):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"a": 0, "[UNK]": 1}, merges=[],
                                                                        unk_token="[UNK]")))
    monkeypatch.setattr("methods.mlm.load_tokenizer", lambda name: bpe)
    with pytest.raises(KdbenchError) as error:
        make(tiny_generator)
    assert str(error.value) == f"generator {tiny_generator} must use a WordPiece (BERT-style) tokenizer"


def test_output_rows_past_the_tokenizers_vocabulary_are_never_candidates(tmp_path, tiny_generator):
    from transformers import AutoTokenizer, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_generator)
    model = BertForMaskedLM.from_pretrained(tiny_generator)
    model.resize_token_embeddings(len(tokenizer) + 8)  # padded, as some checkpoints are
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    method = make(tmp_path)
    assert method.not_words.shape == (len(tokenizer) + 8,)
    assert method.not_words[len(tokenizer):].all() and not method.not_words[:len(tokenizer)].all()
    with torch.no_grad():  # make the padded rows the masked LM's favourites: still never proposed
        model.get_output_embeddings().bias[len(tokenizer):] = 1e4
    model.save_pretrained(tmp_path)
    found = make(tmp_path).candidates(SENTENCES[:1])[0]
    assert found.options and all(option in tokenizer.get_vocab() for options in found.options for option in options)
