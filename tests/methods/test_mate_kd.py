"""MATE-KD and Combined-KD: only masked tokens change, generator steps train only the generator and
student steps only the student, a few generator steps raise the divergence they maximise, the cycle
counts steps as specified, a resumed run restores the generator, pairs rewrite both sides or one, and
a generator of another vocabulary is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, BertForMaskedLM, BertForSequenceClassification

from bench.parts.context import Batch
from bench.parts.errors import KdbenchError
from bench.parts.registry import NoParams
from bench.parts.tasks import get_task
from bench.pipeline.config import KDConfig, RunConfig
from bench.pipeline.runs import run_distill
from methods import get_method
from methods.base import MethodContext
from methods.mate_kd import MateKD, rewritten
from objectives import get_objective
from tests.conftest import STEPS_PER_EPOCH, tiny_config
from tests.test_runs import distill_config

SENTENCES = [("the film was good and the story really charming", "a fine story , really"),
             ("really bad acting , dull plot", "awful and boring")]


def models(seed: int = 0, spread: float = 0.02):
    """A frozen teacher and a student; a larger `spread` (initialiser std) makes outputs vary with the text."""
    torch.manual_seed(seed)
    teacher = BertForSequenceClassification(tiny_config(num_labels=2, initializer_range=spread)).eval()
    student = BertForSequenceClassification(tiny_config(num_labels=2, num_hidden_layers=2,
                                                        initializer_range=spread)).train()
    teacher.requires_grad_(False)
    return teacher, student


def batch(tokenizer_dir, pair: bool = False) -> Batch:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = list(zip(*SENTENCES)) if pair else ([a for a, _ in SENTENCES],)
    inputs = dict(tokenizer(*texts, padding=True, return_tensors="pt"))
    return Batch(inputs, torch.tensor([1, 0]), torch.tensor([[0.5, -0.5], [-1.0, 1.0]]))


def mate_kd(generator, tokenizer_dir, teacher, task: str = "sst2", name: str = "mate-kd", **params) -> MateKD:
    context = MethodContext(task=get_task(task), train_size=100, teacher="tiny", teacher_model=teacher,
                            tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir), kd=KDConfig())
    context.state = SimpleNamespace(global_step=0, max_steps=100, epoch=0.0)
    spec = get_method(name)
    return spec.implementation(spec.parse_params({"generator": str(generator), **params}), context)


def kd_objective(method: MateKD):
    return get_objective("kd").implementation(NoParams(), method.context)


def test_only_masked_positions_change(tiny_generator, tokenizer_dir):
    teacher, student = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, mask_rate=0.5)
    inputs = batch(tokenizer_dir).inputs
    torch.manual_seed(0)
    selected = method.masked_positions(inputs)
    assert selected.any()
    special = torch.isin(inputs["input_ids"], torch.tensor(method.context.tokenizer.all_special_ids))
    assert not (selected & special).any() and not (selected & (inputs["attention_mask"] == 0)).any()
    with torch.no_grad():
        onehot = method.replacements(inputs, selected)
        vectors = rewritten(student, inputs, selected, onehot)["inputs_embeds"]
        clean = student.get_input_embeddings()(inputs["input_ids"])
    assert onehot.shape == (int(selected.sum()), student.config.vocab_size) and (onehot.sum(-1) == 1).all()
    assert torch.equal(vectors[~selected], clean[~selected])
    table = student.get_input_embeddings().weight
    assert torch.equal(vectors[selected], table[onehot.argmax(-1)])


def test_mask_rate_zero_rewrites_nothing_and_one_rewrites_every_eligible_token(tiny_generator, tokenizer_dir):
    teacher, _ = models()
    inputs = batch(tokenizer_dir).inputs
    assert not mate_kd(tiny_generator, tokenizer_dir, teacher, mask_rate=0.0).masked_positions(inputs).any()
    every = mate_kd(tiny_generator, tokenizer_dir, teacher, mask_rate=1.0).masked_positions(inputs)
    eligible = (inputs["attention_mask"] == 1) & ~torch.isin(inputs["input_ids"], torch.tensor([101, 102]))
    assert torch.equal(every, eligible)


@pytest.mark.parametrize("sides,types", [("both", {0, 1}), ("first", {0}), ("second", {1})])
def test_pairs_rewrite_both_sides_or_one(tiny_generator, tokenizer_dir, sides, types):
    teacher, _ = models()
    inputs = batch(tokenizer_dir, pair=True).inputs
    selected = mate_kd(tiny_generator, tokenizer_dir, teacher, task="rte", mask_rate=1.0,
                       sides=sides).masked_positions(inputs)
    assert set(inputs["token_type_ids"][selected].tolist()) == types
    real = (inputs["attention_mask"] == 1) & ~torch.isin(inputs["input_ids"], torch.tensor([101, 102]))
    on_side = torch.isin(inputs["token_type_ids"], torch.tensor(sorted(types)))
    assert torch.equal(selected, real & on_side)  # never padding or a special token, whichever side


def test_one_side_of_a_pair_needs_token_types(tiny_generator, tokenizer_dir):
    teacher, _ = models()
    inputs = {k: v for k, v in batch(tokenizer_dir, pair=True).inputs.items() if k != "token_type_ids"}
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, task="rte", sides="first")
    with pytest.raises(KdbenchError) as raised:
        method.masked_positions(inputs)
    assert str(raised.value) == ("mate-kd: sides=first needs token type ids to tell the sides apart, and this "
                                 "tokenizer gives none; use --param sides=both")


def test_the_generator_sees_the_masked_text_and_samples_at_its_temperature(tiny_generator, tokenizer_dir,
                                                                          monkeypatch):
    """What reaches the generator: [MASK] at the selected positions, the rest and the attention mask and token
    types as they were; the straight-through sample's gradient is Gumbel-softmax's at `gumbel_tau`."""
    import methods.mate_kd

    teacher, _ = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, mask_rate=0.5, gumbel_tau=0.5)
    inputs = batch(tokenizer_dir).inputs
    torch.manual_seed(0)
    selected = method.masked_positions(inputs)
    seen, logits = {}, torch.randn(int(selected.sum()), 7, requires_grad=True)
    monkeypatch.setattr(methods.mate_kd, "masked_lm_logits", lambda model, masked, where: seen.update(masked) or logits)
    torch.manual_seed(1)
    onehot = method.replacements(inputs, selected)
    mask_id = method.context.tokenizer.mask_token_id
    assert (seen["input_ids"][selected] == mask_id).all()
    assert torch.equal(seen["input_ids"][~selected], inputs["input_ids"][~selected])
    assert torch.equal(seen["attention_mask"], inputs["attention_mask"])
    assert torch.equal(seen["token_type_ids"], inputs["token_type_ids"])
    weights = torch.randn(7)
    (onehot * weights).sum().backward()
    ours, logits.grad = logits.grad.clone(), None
    for tau, same in ((0.5, True), (1.0, False)):
        torch.manual_seed(1)
        (torch.nn.functional.gumbel_softmax(logits, tau=tau, hard=True) * weights).sum().backward()
        assert torch.allclose(logits.grad, ours) == same
        logits.grad = None


def _grads(model: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_generator_steps_train_only_the_generator_and_student_steps_only_the_student(tiny_generator, tokenizer_dir):
    teacher, student = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_steps=1, student_steps=1, mask_rate=0.5)
    objective = kd_objective(method)
    torch.manual_seed(0)
    loss = method.loss(student, batch(tokenizer_dir), objective)  # step 0: the generator's
    loss.backward()
    assert _grads(method.generator) and not _grads(student) and not _grads(teacher)
    assert loss.item() == -method._divergences[-1]  # the generator's step logs minus what it maximises
    method.generator.zero_grad(set_to_none=True)
    method.context.state.global_step = 1  # the student's
    method.loss(student, batch(tokenizer_dir), objective).backward()
    assert _grads(student) and not _grads(method.generator)
    assert all(p.requires_grad for p in student.parameters())  # unfrozen after the generator's step


def _expected_divergence(method: MateKD, student, inputs, draws: int = 10) -> float:
    """The generator's objective averaged over fixed masks and Gumbel draws (the same for every call)."""
    with torch.no_grad():
        values = []
        for seed in range(draws):
            torch.manual_seed(seed)
            values.append(method._generator_objective(student, inputs).item())
    return sum(values) / len(values)


@pytest.mark.parametrize("divergence", ["ce", "mse"])
def test_generator_steps_raise_the_divergence_they_maximise(tiny_generator, tokenizer_dir, divergence):
    """Fixed draws and no dropout, so only the generator's weights move the value; its straight-through
    gradient is a first-order estimate, so the models are made smooth in their embeddings (small weights)
    with outputs that still vary with the text (a large classifier). Minimising, as a control, lowers it."""
    changed = {}
    for sign in (1, -1):
        teacher, student = models()
        with torch.no_grad():
            teacher.classifier.weight.mul_(100), student.classifier.weight.mul_(100)
        method = mate_kd(tiny_generator, tokenizer_dir, teacher, mask_rate=0.5, generator_lr=0.1,
                         divergence=divergence)
        student.eval(), method.generator.eval()
        optimizer = method.context.optimizers[0]
        inputs = batch(tokenizer_dir).inputs
        before = _expected_divergence(method, student, inputs)
        for step in range(10):
            torch.manual_seed(100 + step)
            (-sign * method._generator_objective(student, inputs)).backward()
            optimizer.step()
            optimizer.zero_grad()
        changed[sign] = _expected_divergence(method, student, inputs) / before
    assert changed[1] > 1.005 and changed[-1] < 1


def test_combined_kd_maximises_mse_and_runs_with_annealing(tiny_generator, tokenizer_dir, glue_dir, tiny_teacher,
                                                           tmp_path):
    teacher, _ = models()
    assert mate_kd(tiny_generator, tokenizer_dir, teacher, name="combined-kd").params.divergence == "mse"
    config = distill_config(glue_dir, tiny_teacher, tmp_path, method="combined-kd")
    assert config.objective == "annealing"
    with pytest.raises(KdbenchError, match="combined-kd runs with the annealing objective, not continuation"):
        RunConfig(method="combined-kd", objective="continuation")


def test_a_generator_of_another_vocabulary_is_refused(tmp_path, tokenizer_dir):
    from tokenizers import Tokenizer, models as tokenizer_models
    from transformers import PreTrainedTokenizerFast

    vocabulary = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "good": 5}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tokenizer_models.WordLevel(vocabulary, "[UNK]")),
                                        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]")
    folder = tmp_path / "other"
    BertForMaskedLM(tiny_config(vocab_size=6)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    teacher, _ = models()
    with pytest.raises(KdbenchError) as error:
        mate_kd(folder, tokenizer_dir, teacher)
    assert str(error.value) == (f"mate-kd: generator {folder} has another vocabulary than the teacher tiny: its "
                                "tokens must mean the same rows of the teacher's and student's embeddings; build one "
                                "from the teacher with `kdbench make-generator --model TEACHER`")


def test_a_context_without_the_teacher_model_or_a_mask_token_is_refused(tiny_generator, tokenizer_dir):
    spec = get_method("mate-kd")
    params = spec.parse_params({"generator": str(tiny_generator)})
    teacher, _ = models()
    no_mask = AutoTokenizer.from_pretrained(tokenizer_dir)
    no_mask.mask_token = None
    no_teacher = "mate-kd: the teacher model must be in the context (it scores rewritten text)"
    no_mask_token = "mate-kd: the run's tokenizer has no [MASK] token to mask with"
    for message, given in [(no_teacher, {"teacher_model": None, "tokenizer": no_mask}),
                           (no_mask_token, {"teacher_model": teacher, "tokenizer": None}),
                           (no_mask_token, {"teacher_model": teacher, "tokenizer": no_mask})]:
        context = MethodContext(task=get_task("sst2"), train_size=100, teacher="tiny", kd=KDConfig(), **given)
        with pytest.raises(KdbenchError) as error:
            spec.implementation(params, context)
        assert str(error.value) == message


def test_without_a_generator_offline_the_error_names_the_codes_default(tokenizer_dir, monkeypatch):
    import bench.parts.generators

    monkeypatch.setattr(bench.parts.generators, "hub_reachable", lambda: False)
    spec = get_method("mate-kd")
    teacher, _ = models()
    context = MethodContext(task=get_task("sst2"), train_size=100, teacher="tiny", teacher_model=teacher,
                            tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir), kd=KDConfig())
    with pytest.raises(KdbenchError, match="the default generator google/bert_uncased_L-4_H-256_A-4 cannot be "
                                           "downloaded"):
        spec.implementation(spec.parse_params({}), context)


def _run(glue_dir, teacher, generator, out, **changes):
    params = {"generator": str(generator), "generator_steps": 2, "student_steps": 3, "generator_lr": 1e-2}
    return run_distill(distill_config(glue_dir, teacher, out, method="mate-kd", method_params=params, **changes))


def test_the_cycle_counts_steps_as_specified_and_a_resumed_run_restores_the_generator(
        glue_dir, tiny_teacher, tiny_generator, tmp_path, ctrl_c_in_epoch_2):
    # 2 epochs of 6 steps; cycles of 2 generator + 3 student steps: 0-1 G, 2-4 S, 5-6 G, 7-9 S, 10-11 G
    with pytest.raises(KeyboardInterrupt):
        _run(glue_dir, tiny_teacher, tiny_generator, tmp_path / "run", resume=True)
    ctrl_c_in_epoch_2.undo()
    resumed = _run(glue_dir, tiny_teacher, tiny_generator, tmp_path / "run", resume=True)
    assert resumed["resumed_from"]["step"] == STEPS_PER_EPOCH
    whole = _run(glue_dir, tiny_teacher, tiny_generator, tmp_path / "whole")
    report = whole["in_loop"]
    assert (report["generator_steps"], report["student_steps"]) == (6, 6)
    assert "divergence_last_cycle" in report  # the generator's objective ran in more than one cycle
    assert resumed["in_loop"] == report  # the generator, its optimiser and the counts came back whole
    assert resumed["best"] == whole["best"]


def test_combined_kd_takes_the_roberta_scripts_annealing_and_can_be_told_otherwise(glue_dir, tiny_teacher, tmp_path):
    config = distill_config(glue_dir, tiny_teacher, tmp_path, method="combined-kd")
    assert config.objective_params == {"tau_max": 10, "phase1_fraction": 0.75}
    mine = distill_config(glue_dir, tiny_teacher, tmp_path, method="combined-kd", objective_params={"tau_max": 3})
    assert mine.objective_params == {"tau_max": 3, "phase1_fraction": 0.75}
    assert distill_config(glue_dir, tiny_teacher, tmp_path, method="mate-kd").objective_params == {}


@pytest.mark.parametrize("step, halved", [(10, True), (90, False)])  # of 100: phase 1 until 75, then labels only
def test_combined_kd_learns_from_the_mean_of_both_texts_in_phase_1(tiny_generator, tokenizer_dir, step, halved):
    teacher, student = models()
    losses = []
    for mean in (True, False):
        method = mate_kd(tiny_generator, tokenizer_dir, teacher, name="combined-kd", generator_steps=0,
                         mask_rate=0.5, mean_of_views=mean)
        method.context.state.global_step = step
        objective = get_objective("annealing").implementation(
            get_objective("annealing").parse_params({"tau_max": 10, "phase1_fraction": 0.75}), method.context)
        torch.manual_seed(0)
        losses.append(method.loss(student, batch(tokenizer_dir), objective))
    mean, total = losses
    assert mean.item() == pytest.approx(total.item() / 2 if halved else total.item(), rel=1e-6)


def test_the_student_learns_the_teachers_output_on_the_rewritten_text(tiny_generator, tokenizer_dir):
    """The point of MATE-KD: on the rewritten text, the student is taught what the teacher says about that
    text, not what it said about the original (which the rewrite was chosen to move away from). The loss's
    view term must get the teacher's logits on the rewritten text: the masks and tokens are drawn again
    from the same seed, and the teacher is made to answer differently on the two texts."""
    teacher, student = models(spread=0.2)  # outputs that move with the text
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_steps=0, mask_rate=0.5)
    method.generator.eval()  # no dropout: the draws below repeat those of the loss
    objective = kd_objective(method)
    targets, view_loss = [], objective.view_loss
    objective.view_loss = lambda logits, target, b: targets.append((target, b)) or view_loss(logits, target, b)
    inputs, given = batch(tokenizer_dir).inputs, batch(tokenizer_dir)
    torch.manual_seed(0)
    method.loss(student, given, objective)

    torch.manual_seed(0)
    with torch.no_grad():
        selected = method.masked_positions(inputs)
        onehot = method.replacements(inputs, selected)
        on_rewritten = teacher(**rewritten(teacher, inputs, selected, onehot)).logits
        on_original = teacher(**inputs).logits
    assert (onehot.argmax(-1) != inputs["input_ids"][selected]).any()  # the generator did change some tokens
    assert (on_rewritten - on_original).abs().max() > 0.1
    ((target, seen),) = targets
    assert torch.allclose(target, on_rewritten, atol=1e-6)
    assert seen is given  # the objective's view term gets the batch (its labels, ids, origins), as any view's


@pytest.mark.parametrize("task, divergence", [("sst2", "mse"), ("sst2", "kl"), ("sst2", "ce"), ("stsb", "ce")])
def test_the_generators_divergence_by_hand(tiny_generator, tokenizer_dir, task, divergence):
    """What the generator maximises, at temperature 2: the logits' squared error (and always for
    regression), t^2 KL(teacher || student), or the cross-entropy of the student under the teacher."""
    teacher, _ = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, task=task, divergence=divergence, temperature=2.0)
    # three rows of two classes: a mean over the wrong dimension gives another number
    student = torch.tensor([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]) if task == "sst2" else torch.tensor([[0.3], [1.5]])
    target = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]]) if task == "sst2" else torch.tensor([[0.1], [0.5]])
    p, log_q = torch.softmax(target / 2, -1), torch.log_softmax(student / 2, -1)
    expected = {"mse": ((student - target) ** 2).mean(), "ce": -(p * log_q).sum(-1).mean(),
                "kl": (4 * (p * (p.log() - log_q)).sum(-1)).mean()}
    assert torch.allclose(method._divergence(student, target), expected["mse" if task == "stsb" else divergence])


def test_the_student_step_adds_the_weighted_rewritten_term_and_checks_the_students_vocabulary(
        tiny_generator, tokenizer_dir, monkeypatch):
    teacher, student = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_steps=0, adv_weight=0.5,
                     mean_of_views=False)
    objective = kd_objective(method)
    monkeypatch.setattr(objective, "loss", lambda logits, batch: torch.full((2,), 1.0))
    monkeypatch.setattr(objective, "view_loss", lambda logits, target, batch: torch.full((2,), 4.0))
    assert method.loss(student, batch(tokenizer_dir), objective).item() == 1.0 + 0.5 * 4.0
    other = BertForSequenceClassification(tiny_config(num_labels=2, vocab_size=100))
    fresh = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_steps=0)
    with pytest.raises(KdbenchError, match="the student has 100 word embeddings: they must share one vocabulary"):
        fresh.loss(other, batch(tokenizer_dir), objective)


def test_the_report_and_the_changed_fraction_by_hand(tiny_generator, tokenizer_dir):
    from methods.mate_kd import _changed_fraction

    teacher, _ = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_steps=2)
    method._divergences, method._changed = [1.0, 2.0], [0.1, 0.5, 0.3]
    assert method.report() == {"generator_steps": 0, "student_steps": 0, "divergence_first_cycle": 1.5,
                               "changed_fraction_median": 0.3}  # one cycle only: no last cycle
    method._divergences += [4.0, 5.0]
    assert method.report()["divergence_last_cycle"] == 4.5
    method._divergences += [7.0, 9.0]  # a third cycle: the last is the last two steps, not all after the first
    assert method.report()["divergence_last_cycle"] == 8.0
    input_ids = torch.tensor([[5, 6, 7, 8]])
    selected = torch.tensor([[True, True, False, True]])
    onehot = torch.nn.functional.one_hot(torch.tensor([5, 9, 8]), 12).float()  # keeps 5 and 8, changes 6
    assert _changed_fraction(input_ids, selected, onehot) == pytest.approx(1 / 3)
    assert _changed_fraction(input_ids, torch.zeros_like(selected), onehot[:0]) == 0.0  # nothing masked, nothing changed


def test_a_teacher_of_another_vocabulary_size_is_refused_by_role(tiny_generator, tokenizer_dir):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config(num_labels=2, vocab_size=30600)).eval()
    with pytest.raises(KdbenchError) as error:
        mate_kd(tiny_generator, tokenizer_dir, teacher)
    assert str(error.value) == ("mate-kd: the generator has 30522 output tokens but the teacher has 30600 word "
                                "embeddings: they must share one vocabulary")


def test_the_generators_optimiser_has_its_learning_rate_and_clip(tiny_generator, tokenizer_dir):
    teacher, _ = models()
    method = mate_kd(tiny_generator, tokenizer_dir, teacher, generator_lr=3e-6, generator_clip=2.5)
    (optimizer,) = method.context.optimizers
    (group,) = optimizer.param_groups
    assert group["lr"] == 3e-6 and group["max_grad_norm"] == 2.5
    assert {id(p) for p in group["params"]} == {id(p) for p in method.generator.parameters()}
