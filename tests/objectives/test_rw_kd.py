"""RW-KD: on a toy problem the weights favour the term whose gradient helps the meta loss; on a tiny
BERT (classification and regression, all parameters or the head) the weights are a per-example
convex pair and the loss trains; the meta split is carved seeded and disjoint; the same seed gives
the same loss, also after a checkpoint; the report and view loss; and a whole tiny run."""

from __future__ import annotations

import types

import datasets
import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from bench.parts.context import EXAMPLE_ID, Batch, TrainingContext
from bench.parts.errors import KdbenchError
from bench.parts.features import TEACHER_LOGITS, Collator
from bench.parts.kd_config import KDConfig
from bench.parts.losses import kd_divergence
from bench.parts.tasks import get_task
from bench.pipeline.runs import run_distill
from objectives import get_objective
from tests.conftest import tiny_config
from tests.test_runs import distill_config

A, B, C = 5, 6, 7  # the toy's tokens: A is class 0, B class 1, C is not in the meta split
SENTENCES = ["the film was good", "really bad acting , dull plot", "a fine story", "awful", "quite charming",
             "boring plot", "lovely acting", "the story was weak"]


class TokenTable(torch.nn.Module):
    """A linear toy student: the logits of a one-token input are that token's row (zeros: no preference yet)."""

    def __init__(self, vocab: int = 8, labels: int = 2):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(vocab, labels))

    def forward(self, input_ids: torch.Tensor, **_) -> types.SimpleNamespace:
        return types.SimpleNamespace(logits=self.table[input_ids[:, 0]])


def rw_kd(model, tokenizer_dir, *, task: str = "sst2", train_size: int, **params):
    context = TrainingContext(task=get_task(task), train_size=train_size, teacher="tiny",
                              tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir), kd=KDConfig(temperature=2.0))
    context.model = model  # what the harness binds when training begins
    spec = get_objective("rw-kd")
    return spec.implementation(spec.parse_params(params), context)


def toy_set(n: int) -> datasets.Dataset:
    """`n` clean one-token examples, A labelled 0 and B labelled 1 in turn, their teacher agreeing."""
    tokens = [A if i % 2 == 0 else B for i in range(n)]
    return datasets.Dataset.from_dict({"input_ids": [[t] for t in tokens], "labels": [int(t == B) for t in tokens],
                                       TEACHER_LOGITS: [[2.0, -2.0] if t == A else [-2.0, 2.0] for t in tokens]})


def bert_set(tokenizer_dir, regression: bool = False) -> datasets.Dataset:
    """The tokenised SENTENCES with labels and (random) teacher logits, as the harness hands `held_out`."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = dict(tokenizer(SENTENCES, truncation=True))
    generator = torch.Generator().manual_seed(0)
    rows["labels"] = [float(i % 5) for i in range(len(SENTENCES))] if regression else [i % 2 for i in range(len(SENTENCES))]
    rows[TEACHER_LOGITS] = torch.randn(len(SENTENCES), 1 if regression else 2, generator=generator).tolist()
    return datasets.Dataset.from_dict(rows)


def batch_of(ds: datasets.Dataset, tokenizer_dir) -> Batch:
    collated = Collator(AutoTokenizer.from_pretrained(tokenizer_dir))([ds[i] for i in range(len(ds))])
    return Batch(collated, collated.pop("labels"), collated.pop(TEACHER_LOGITS))


def bert(labels: int = 2) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(num_labels=labels, num_hidden_layers=2)).eval()  # no dropout


def test_weights_favour_the_term_whose_gradient_agrees_with_the_meta_loss(tokenizer_dir):
    model = TokenTable()
    objective = rw_kd(model, tokenizer_dir, train_size=20, meta_fraction=0.5, meta_batch_size=32)
    objective.held_out(toy_set(20))
    assert {row[0] for row in objective.meta["input_ids"]} == {A, B}  # the whole meta split is each meta batch
    inputs = {"input_ids": torch.tensor([[A], [B], [C]])}
    # A: a noisy label, the teacher right; B: the label right, the teacher wrong; C: nothing to learn from
    batch = Batch(inputs, torch.tensor([1, 1, 0]), torch.tensor([[3.0, -3.0], [3.0, -3.0], [0.0, 0.0]]))
    w = objective.weights(batch)  # columns: CE, KD
    assert w[0, 1] > w[0, 0]
    assert w[1, 0] > w[1, 1]
    assert torch.equal(w[2], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("meta_params", ["all", "head"])
@pytest.mark.parametrize("task", ["sst2", "stsb"])
def test_weights_are_a_convex_pair_per_example_and_the_loss_trains(tokenizer_dir, task, meta_params):
    regression = task == "stsb"
    model = bert(1 if regression else 2)
    ds = bert_set(tokenizer_dir, regression)
    objective = rw_kd(model, tokenizer_dir, task=task, train_size=len(ds), meta_fraction=0.25, meta_params=meta_params)
    batch = batch_of(objective.held_out(ds), tokenizer_dir)
    w = objective.weights(batch)
    assert all(p.grad is None for p in model.parameters())  # the meta step leaves the real step's gradients alone
    assert w.shape == (6, 2) and (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(6))
    logits = model(**batch.inputs).logits
    if regression:  # both terms squared errors: to the gold score, to the teacher
        squared = torch.stack([(logits[:, 0] - batch.labels) ** 2, (logits - batch.teacher_logits)[:, 0] ** 2], -1)
        assert torch.allclose(objective.terms(logits, batch), squared)
        assert torch.allclose(objective.view_loss(logits, batch.teacher_logits, batch), 0.5 * squared[:, 1])
    loss = objective.loss(logits, batch)
    assert loss.shape == (6,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_delta_floors_the_weights(tokenizer_dir):
    model = TokenTable()
    objective = rw_kd(model, tokenizer_dir, train_size=20, meta_fraction=0.5, delta=1e6)
    objective.held_out(toy_set(20))
    batch = Batch({"input_ids": torch.tensor([[A]])}, torch.tensor([1]), torch.tensor([[3.0, -3.0]]))
    w = objective.weights(batch)
    assert torch.allclose(w, torch.tensor([[0.5, 0.5]]), atol=1e-3)


def test_a_small_delta_lifts_a_clamped_weight_above_zero(tokenizer_dir):
    """A's label is noisy, so its label term's raw weight is clamped to 0: with delta 0 its weights are
    (0, 1); each delta > 0 adds to both before normalising, so both are strictly inside (0, 1) and the
    label term's weight grows with delta toward 0.5."""
    batch = Batch({"input_ids": torch.tensor([[A]])}, torch.tensor([1]), torch.tensor([[3.0, -3.0]]))
    label_weights = []
    for delta in (0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1.0):
        objective = rw_kd(TokenTable(), tokenizer_dir, train_size=20, meta_fraction=0.5, delta=delta)
        objective.held_out(toy_set(20))
        w = objective.weights(batch)[0]
        assert w.sum().item() == pytest.approx(1.0)
        assert (w > 0).all() and (w < 1).all() if delta else w.tolist() == [0.0, 1.0]
        label_weights.append(w[0].item())
    assert label_weights == sorted(label_weights) and label_weights[-1] < 0.5


def test_a_parameter_the_loss_does_not_reach_is_left_out_of_the_virtual_step(tokenizer_dir):
    model = TokenTable()
    model.unused = torch.nn.Parameter(torch.ones(3))
    objective = rw_kd(model, tokenizer_dir, train_size=20, meta_fraction=0.5)
    objective.held_out(toy_set(20))
    batch = Batch({"input_ids": torch.tensor([[A]])}, torch.tensor([1]), torch.tensor([[3.0, -3.0]]))
    assert objective.weights(batch).shape == (1, 2)


def test_the_virtual_step_moves_the_trainable_parameters_all_or_the_heads():
    model = bert()
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]

    def moved(meta_params: str, model: torch.nn.Module = model) -> list[str]:
        spec = get_objective("rw-kd")
        objective = spec.implementation(spec.parse_params({"meta_params": meta_params}),
                                        TrainingContext(task=get_task("sst2"), train_size=8, teacher="tiny"))
        return list(objective._meta_parameters(model))

    assert moved("all") == trainable and "bert.embeddings.word_embeddings.weight" not in trainable
    assert moved("head") == ["classifier.weight", "classifier.bias"]
    assert moved("head") == [name for name in trainable if not name.startswith("bert.")]
    assert moved("head", TokenTable()) == ["table"]  # no `base_model_prefix`: no encoder to leave out


def test_a_meta_step_before_its_split_or_its_student_says_what_is_missing(tokenizer_dir):
    batch = Batch({"input_ids": torch.tensor([[A]])}, torch.tensor([1]), torch.tensor([[3.0, -3.0]]))
    with pytest.raises(RuntimeError, match="^rw-kd has no meta split: held_out was not called$"):
        rw_kd(TokenTable(), tokenizer_dir, train_size=20).weights(batch)
    with pytest.raises(RuntimeError, match="^rw-kd needs the student: context.model, bound when training begins$"):
        rw_kd(None, tokenizer_dir, train_size=20).weights(batch)


def test_held_out_carves_a_seeded_disjoint_meta_split(tokenizer_dir):
    ds = datasets.Dataset.from_dict({"input_ids": [[i] for i in range(50)], "labels": [0] * 50,
                                     TEACHER_LOGITS: [[0.0, 0.0]] * 50, EXAMPLE_ID: list(range(50))})

    def carve(seed: int) -> tuple[set[int], list[int], TrainingContext]:
        objective = rw_kd(None, tokenizer_dir, train_size=40, seed=seed)  # rows 40-49: pool examples
        rest = objective.held_out(ds)
        return {row[0] for row in objective.meta["input_ids"]}, [row[0] for row in rest["input_ids"]], objective

    meta, rest, objective = carve(0)
    assert len(meta) == 4 and len(rest) == 46 and objective.context.train_size == 36
    assert meta.isdisjoint(rest) and meta | set(rest) == set(range(50)) and rest == sorted(rest)
    assert max(meta) < 40  # carved from the originals only
    assert objective.meta.column_names == ["input_ids", "labels"]
    assert carve(0)[:2] == (meta, rest) and carve(1)[0] != meta
    tiny = rw_kd(None, tokenizer_dir, train_size=40, meta_fraction=0.01)  # 0.4 examples: at least one
    tiny.held_out(ds)
    assert len(tiny.meta) == 1 and tiny.context.train_size == 39
    with pytest.raises(KdbenchError, match="leaves no training example"):
        rw_kd(None, tokenizer_dir, train_size=1).held_out(ds.select([0]))


def test_same_seed_same_loss_also_after_a_checkpoint(tokenizer_dir):
    model = bert()
    ds = bert_set(tokenizer_dir)

    def objective_and_batch(seed: int):
        objective = rw_kd(model, tokenizer_dir, train_size=len(ds), meta_fraction=0.5, meta_batch_size=2, seed=seed)
        return objective, batch_of(objective.held_out(ds), tokenizer_dir)

    def losses(objective, batch, steps: int = 3) -> list[torch.Tensor]:
        return [objective.loss(model(**batch.inputs).logits, batch).detach() for _ in range(steps)]

    first, batch = objective_and_batch(0)
    expected = losses(first, batch)
    second, _ = objective_and_batch(0)
    assert all(torch.equal(a, b) for a, b in zip(expected, losses(second, batch)))
    checkpointed, _ = objective_and_batch(0)
    losses(checkpointed, batch, 1)
    resumed, _ = objective_and_batch(0)
    resumed.load_state_dict(checkpointed.state_dict())
    assert resumed.last_kd_weight == checkpointed.last_kd_weight != 0.5  # the views' weight until the next step
    assert torch.equal(losses(resumed, batch, 1)[0], expected[1])  # the second step's meta batch, not the first's
    other, other_batch = objective_and_batch(1)
    assert not torch.equal(losses(other, other_batch, 1)[0], expected[0])


def test_report_and_view_loss(tokenizer_dir):
    model = bert()
    ds = bert_set(tokenizer_dir)
    objective = rw_kd(model, tokenizer_dir, train_size=len(ds), meta_fraction=0.25)
    assert objective.report() == {"meta_examples": 0, "mean_weight_ce": None, "mean_weight_kd": None}
    batch = batch_of(objective.held_out(ds), tokenizer_dir)
    assert objective.report() == {"meta_examples": 2, "mean_weight_ce": None, "mean_weight_kd": None}
    logits = model(**batch.inputs).logits
    kd = kd_divergence(logits, batch.teacher_logits, temperature=2.0, regression=False)
    assert torch.allclose(objective.view_loss(logits, batch.teacher_logits, batch), 0.5 * kd)
    w = objective.weights(batch)
    ce = torch.nn.functional.cross_entropy(logits, batch.labels, reduction="none")
    assert torch.allclose(objective.terms(logits, batch), torch.stack([ce, kd], -1))
    assert torch.allclose(objective.loss(logits, batch), w[:, 0] * ce + w[:, 1] * kd)
    report = objective.report()
    assert report["mean_weight_ce"] + report["mean_weight_kd"] == pytest.approx(1.0)
    assert report["mean_weight_kd"] == pytest.approx(w[:, 1].mean().item(), abs=1e-6)  # each meta batch: the whole split
    assert torch.allclose(objective.view_loss(logits, batch.teacher_logits, batch), report["mean_weight_kd"] * kd)


def test_rw_kd_trains_end_to_end(glue_dir, tiny_teacher, tmp_path):
    record = run_distill(distill_config(glue_dir, tiny_teacher, tmp_path / "run", objective="rw-kd",
                                        objective_params={"meta_fraction": 0.25, "meta_batch_size": 4}))
    measured = record["objective_info"]["measured"]
    assert measured["meta_examples"] == 12
    assert record["throughput"]["train_examples"] == 2 * 36
    assert measured["mean_weight_ce"] + measured["mean_weight_kd"] == pytest.approx(1.0)
