"""Building a masked-LM generator offline (`bench.pipeline.generator`) from a tiny encoder."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM

from bench.parts.errors import KdbenchError
from bench.parts.generators import masked_lm_logits
from bench.parts.tasks import get_task
from bench.pipeline.generator import INFO_FILE, GeneratorSettings, make_generator
from bench.pipeline.runs import DataConfig
from methods.base import MethodContext
from methods.mlm import MaskedLMGeneration, MLMParams
from tests.conftest import write_sst2

SETTINGS = GeneratorSettings(learning_rate=1e-3, max_steps=-1, num_train_epochs=4, per_device_train_batch_size=16)
QUICK = GeneratorSettings(max_steps=2)


@pytest.fixture
def data(tmp_path) -> DataConfig:
    return DataConfig(task="sst2", data_dir=str(write_sst2(tmp_path / "glue")), max_length=32)


def test_make_generator_trains_a_tied_head_and_caches_it(tiny_encoder, data):
    folder, cached = make_generator(str(tiny_encoder), data, SETTINGS)
    assert not cached
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    record = json.loads((folder / INFO_FILE).read_text())
    assert record["train_sentences"] == 48 and record["steps"] == 12 and record["new_head"]
    assert record["eval_loss_after"] < record["eval_loss_before"]
    assert make_generator(str(tiny_encoder), data, SETTINGS) == (folder, True)
    assert make_generator(str(tiny_encoder), data, GeneratorSettings(seed=1, max_steps=2))[0] != folder

    method = MaskedLMGeneration(MLMParams(generator=str(folder)), MethodContext(get_task("sst2"), 48, "t"))
    assert len(method.augment(["the story was quite good"], [3], seed=0)[0]) == 3


def test_output_dir_and_refusing_a_foreign_folder(tiny_encoder, data, tmp_path):
    folder, cached = make_generator(str(tiny_encoder), data, QUICK,
                                    output_dir=tmp_path / "gen")
    assert (folder, cached) == (tmp_path / "gen", False) and (folder / INFO_FILE).is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(KdbenchError, match="not a generator folder"):
        make_generator(str(tiny_encoder), data, QUICK, output_dir=tmp_path / "other")


def test_a_generator_built_twice_from_nothing_is_the_same_and_rewrites_the_same(tiny_encoder, data, tmp_path):
    """Same seed, same generator: two builds in empty folders give the same weights, byte for byte, and
    the same rewritten text (what the demo's masked-LM row rests on; on one machine and thread count)."""
    settings = GeneratorSettings(learning_rate=1e-3, max_steps=6, per_device_train_batch_size=8)
    first, second = (make_generator(str(tiny_encoder), data, settings, output_dir=tmp_path / name)[0]
                     for name in ("first", "second"))
    weights = [(folder / "model.safetensors").read_bytes() for folder in (first, second)]
    assert weights[0] == weights[1]
    context = MethodContext(get_task("sst2"), 48, "t")
    text = ["the story was quite good", "a dull and lifeless film that never ends"]
    first_pool, second_pool = (MaskedLMGeneration(MLMParams(generator=str(folder), p_t=0.9), context)
                               .augment(text, [3, 3], seed=0) for folder in (first, second))
    assert first_pool == second_pool and first_pool[0][0] != text[0]


def test_logits_at_selected_positions_equal_the_full_head(tiny_encoder):
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(tiny_encoder).eval()
    inputs = {"input_ids": torch.randint(1000, 2000, (3, 7)), "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    selected = torch.zeros(3, 7, dtype=torch.bool)
    selected[0, 2] = selected[1, 5] = selected[2, 0] = selected[2, 6] = True
    with torch.inference_mode():
        full = model(**inputs).logits
        assert torch.allclose(masked_lm_logits(model, inputs, selected), full[selected], atol=1e-5)
