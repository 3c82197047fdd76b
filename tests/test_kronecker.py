"""KroneckerBERT students (students/kronecker.py, bench/parts/kronecker.py): the factorised map equals the dense
Kronecker product, the nearest-Kronecker initialisation recovers a weight that is one, the parameter count
follows the shapes' arithmetic (Table 1's presets on BERT-base included), a saved student loads back whole,
and a run distils one."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from bench.parts.errors import KdbenchError
from bench.parts.kronecker import KroneckerEmbedding, KroneckerLinear, kroneckerize, nearest_kronecker
from bench.parts.models import load_classifier
from bench.parts.tasks import get_task
from bench.pipeline.choice import choose_parts
from bench.pipeline.config import RunConfig
from bench.pipeline.runs import run_distill
from bench.pipeline.students import build_student
from tests.conftest import tiny_config
from tests.test_runs import distill_config

SST2 = get_task("sst2")
TINY_SHAPES = dict(mha=(16, 16), ffn=(2, 4), embedding=4)  # hidden 32, FFN 64: B 2x2, 16x16; embedding rows 8 x 4


def test_the_factorised_map_is_the_dense_kronecker_product():
    torch.manual_seed(0)
    layer = KroneckerLinear((3, 4), (5, 2))
    for parameter in layer.parameters():
        parameter.data.normal_()
    x = torch.randn(2, 7, 8)
    assert layer.dense().shape == (15, 8) and (layer.in_features, layer.out_features) == (8, 15)
    assert torch.allclose(layer(x), x @ layer.dense().T + layer.bias, atol=1e-5)
    table = KroneckerEmbedding(6, 12, 3)
    table.a.data.normal_(), table.b.data.normal_()
    ids = torch.tensor([[0, 5, 2]])
    assert torch.allclose(table(ids), table.weight[ids]) and table.weight.shape == (6, 12)
    assert torch.allclose(table.weight[4], torch.kron(table.a[4], table.b))


def test_the_nearest_kronecker_product_recovers_one_exactly():
    torch.manual_seed(1)
    a, b = torch.randn(4, 3), torch.randn(2, 5)
    found_a, found_b = nearest_kronecker(torch.kron(a, b), (4, 3), (2, 5))
    assert torch.allclose(torch.kron(found_a, found_b), torch.kron(a, b), atol=1e-5)
    noisy = torch.kron(a, b) + 0.01 * torch.randn(8, 15)
    found = torch.kron(*nearest_kronecker(noisy, (4, 3), (2, 5)))
    other = torch.kron(a * 1.1, b)
    assert (found - noisy).norm() < (torch.kron(a, b) - noisy).norm() < (other - noisy).norm()


def _exactly_factorised_teacher() -> BertForSequenceClassification:
    """A tiny teacher whose compressed maps are exact Kronecker products of the tiny shapes."""
    torch.manual_seed(2)
    teacher = BertForSequenceClassification(tiny_config(num_labels=2)).eval()
    kroneckerize(copied := BertForSequenceClassification(teacher.config), initialise=False, **TINY_SHAPES)
    for parameter in copied.parameters():
        parameter.data.normal_(0, 0.2)
    dense = {name: module for name, module in teacher.named_modules()}
    for name, module in copied.named_modules():
        if isinstance(module, KroneckerLinear):
            dense[name].weight.data.copy_(module.dense())
        elif isinstance(module, KroneckerEmbedding):
            dense[name].weight.data.copy_(module.weight)
    return teacher


def test_a_student_of_an_exactly_factorised_teacher_computes_what_it_does(tmp_path):
    teacher = _exactly_factorised_teacher()
    student = build_student("kronecker", teacher, SST2, {"mha": "16x16", "ffn": "2x4", "embedding": 4}).eval()
    ids = torch.tensor([[101, 2023, 3185, 2003, 2204, 102]])
    assert torch.allclose(student(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-4)
    student.save_pretrained(tmp_path)
    loaded = load_classifier(str(tmp_path), SST2, require_trained_head=True).eval()
    assert isinstance(loaded.bert.encoder.layer[0].intermediate.dense, KroneckerLinear)
    assert torch.equal(loaded(input_ids=ids).logits, student(input_ids=ids).logits)


def test_the_parameter_count_follows_the_shapes():
    teacher = BertForSequenceClassification(tiny_config(num_labels=2))
    student = kroneckerize(BertForSequenceClassification(teacher.config), initialise=False, **TINY_SHAPES)
    per_layer = 4 * (32 * 32 - (16 * 16 + 2 * 2)) + 2 * (32 * 64 - (8 + 16 * 16))  # attention maps, FFN maps
    embeddings = 30522 * 32 - (30522 * 8 + 4)
    assert teacher.num_parameters() - student.num_parameters() == 4 * per_layer + embeddings


@pytest.mark.parametrize("preset, mha, ffn, n", [("kroneckerbert8", (384, 384), (2, 8), 8),
                                                  ("kroneckerbert21", (48, 384), (2, 16), 16)])
def test_the_presets_are_table_1s_shapes_on_bert_base(preset, mha, ffn, n):
    from students.kronecker import Kronecker, KroneckerParams

    assert Kronecker.shapes(KroneckerParams(preset=preset)) == (mha, ffn, n)
    base = BertForSequenceClassification(BertConfig())
    dense = base.num_parameters()
    student = kroneckerize(base, initialise=False, mha=mha, ffn=ffn, embedding=n)
    (n1, m1), (f1, f2) = mha, ffn
    attention = 768 * 768 - (n1 * m1 + (768 // m1) * (768 // n1))
    feed_forward = 768 * 3072 - (f1 * f2 + (3072 // f2) * (768 // f1))
    assert dense - student.num_parameters() == 12 * (4 * attention + 2 * feed_forward) + 30522 * 768 - (
        30522 * 768 // n + n)


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(KdbenchError, match="kronecker mha is A's shape as two integers n1xm1"):
        choose_parts(RunConfig(student="kronecker", student_params={"mha": "384"}))
    with pytest.raises(KdbenchError, match="does not divide this model's 32 x 32 weights"):
        build_student("kronecker", BertForSequenceClassification(tiny_config(num_labels=2)), SST2, {"mha": "5x5"})


def test_a_run_distils_a_kronecker_student(glue_dir, tiny_teacher, tmp_path, capsys):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", student="kronecker", objective="tinybert",
                                        student_params={"mha": "16x16", "ffn": "2x4", "embedding": 4}))
    teacher = load_classifier(str(tiny_teacher), SST2)
    assert record["model"]["parameters"] < teacher.num_parameters() / 2
    assert f"{record['model']['parameters']:,} parameters" in capsys.readouterr().out
    assert record["config"]["model"] == "kronecker:mha=16x16,ffn=2x4,embedding=4"
    assert RunConfig(student=record["config"]["model"]).student_params == {"mha": "16x16", "ffn": "2x4", "embedding": "4"}
    loaded = load_classifier(str(tmp_path / "run" / "model"), SST2, require_trained_head=True)
    assert loaded.num_parameters() == record["model"]["parameters"]
