"""The settings of a run, as dataclasses: which data (`DataConfig`), how to train (`TrainConfig`,
named as in `transformers.TrainingArguments`), the KD loss's temperature and weights (`KDConfig`),
how the masked-LM generator is trained (`GeneratorSettings`), and general distillation on text
(`GeneralKDSettings`).

Kept free of heavy imports, so the command line can build its options (and `--help`) without
loading torch or transformers. Each field's metadata gives its help text and allowed values;
`check_ranges` in `__post_init__` stops a bad value before any data or model is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from bench import catalogue
from bench.parts.errors import KdbenchError
from bench.parts.fields import AT_LEAST_ONE, MAX_STEPS, NON_NEGATIVE, POSITIVE, POSITIVE_FRACTION, SEED, Range, check_ranges
from bench.parts.kd_config import KDConfig
from bench.parts.registry import composed
from students.registry import split_student, student_text

# Measured with the MiniLM (BERT) tokenizer through `bench.parts.features.tokenize`: below 3 it ignores
# truncation and keeps whole pairs (a run would record a length it never used), 3 leaves only the
# special tokens and 4 drops one side whole.
MIN_MAX_LENGTH = 5
DEMO_TRAIN_EXAMPLES = 1000  # the demo's seeded SST-2 subset, as in the quick search profile and the speed spec
LABEL_NOISE_TYPES = ("uniform", "class-conditional")  # how `DataConfig.label_noise` corrupts a label
# TrainingArguments.train_sampling_strategy values we offer; the first two are ours (bench/pipeline/training.py)
LENGTH_STRATEGIES = ("bucket_by_length", "group_by_length")  # batches of similar length
SAMPLING_STRATEGIES = (*LENGTH_STRATEGIES, "random")
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")  # TrainingArguments.report_to values we offer
# The methods the demo compares, in its order; each runs with its declared `demo_params` (`kdbench list methods`),
# and the masked-LM generator (mlm, mate-kd) is added once the demo has built it.
DEMO_METHODS = ("none", "ad2", "eda", "backtranslation", "mlm", "mate-kd")
PROFILE_NOTE = ("pool methods make 1 augmented copy per sentence (papers: EDA 8 at this size, masked-LM 20; apertium "
                "gives 1); masked-LM candidates come from a generator made from the teacher by `make-generator` in "
                "100 steps (default 300), not BERT-base")


@dataclass(frozen=True)
class DemoProfile:
    """A student setting the demo runs (`kdbench demo --profile NAME`), printed with its table."""

    student: str
    learning_rate: float
    num_train_epochs: float
    description: str


DEMO_PROFILES = {
    # docs/results.md, "Where methods separate": with one layer the no-KD student is about 8 points behind the teacher and KD
    # on augmented text closes much of that gap, beyond the seed spread; on three layers every student lies within
    # the seed spread of the others
    "small-student": DemoProfile("teacher-layers:0", 3e-4, 4, "1-layer student (teacher layer 0), 4 epochs at lr 3e-4"),
    "three-layer": DemoProfile("teacher-layers:0,2,4", 1e-4, 2,
                               "3-layer student (teacher layers 0, 2, 4), 2 epochs at lr 1e-4"),
}
DEFAULT_DEMO_PROFILE = "small-student"


@dataclass
class DataConfig:
    """Which data a run uses: a GLUE task, or the user's own files."""

    task: str = field(default="sst2", metadata={"help": "GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli)"})
    data_dir: str | None = field(default=None, metadata={"help": "GLUE folder in download_glue_data.py layout (default: $KDBENCH_GLUE_DIR, else the hub)"})
    train_file: str | None = field(default=None, metadata={"help": "own task: training file (.csv, .tsv or .jsonl)"})
    validation_file: str | None = field(default=None, metadata={"help": "own task: dev file"})
    text_columns: str | None = field(default=None, metadata={"help": "own task: one or two text columns, comma-separated"})
    label_column: str = field(default="label", metadata={"help": "own task: label column"})
    regression: bool = field(default=False, metadata={"help": "own task: labels are real numbers"})
    max_train_examples: int | None = field(default=None, metadata={"help": "seeded subset of the training set",
                                                                   "range": AT_LEAST_ONE})
    subset_seed: int = field(default=42, metadata={"help": "seed of that subset (fixed across training seeds)",
                                                   "range": SEED})
    max_length: int = field(default=128, metadata={"help": "maximum sequence length in tokens",
                                                   "range": Range(MIN_MAX_LENGTH)})
    label_noise: float = field(default=0.0, metadata={"help": "fraction of training labels corrupted (dev/test "
                                                      "stay clean)", "range": Range(0, 1, high_open=True)})
    label_noise_type: str = field(default="uniform", metadata={
        "help": "uniform: a different class drawn uniformly; class-conditional: class c -> (c + 1) mod K "
                "(the pair-flip noise of the noisy-label literature)", "choices": LABEL_NOISE_TYPES})
    label_noise_seed: int = field(default=0, metadata={"help": "seed of which labels are corrupted, and how",
                                                       "range": SEED})
    eval_task: str = field(default="", metadata={
        "help": "out-of-domain sets scored once with the kept weights, comma-separated: hans (HANS, for RTE, QNLI "
                "and MNLI students) or file:PATH (a .csv, .tsv or .jsonl of the task's text columns and label); "
                "see docs/running.md"})
    eval_task_examples: int | None = field(default=None, metadata={
        "help": "a seeded subset (subset_seed) of this many rows of each out-of-domain set", "range": AT_LEAST_ONE})
    attack_recipe: str = field(default="", metadata={
        "help": "TextAttack recipes that attack the kept weights once after training, comma-separated: pwws "
                "(WordNet synonym swaps) or deepwordbug (character edits); needs the attack extra, see "
                "docs/running.md"})
    attack_examples: int = field(default=100, metadata={
        "help": "a seeded sample (subset_seed) of this many dev examples to attack", "range": AT_LEAST_ONE})
    attack_query_budget: int = field(default=2000, metadata={
        "help": "model queries an attack may spend on one example before it counts as failed", "range": AT_LEAST_ONE})
    attack_seed: int = field(default=0, metadata={"help": "seed of the attack's own random draws", "range": SEED})

    def __post_init__(self):
        check_ranges(self)  # a bad value stops the run here, before any data is loaded


@dataclass
class TrainConfig:
    """Training settings, named and defaulted as in `transformers.TrainingArguments` where it has them."""

    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate of AdamW", "range": POSITIVE})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "training batch size per device",
                                                                   "range": AT_LEAST_ONE})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size per device",
                                                                   "range": AT_LEAST_ONE})
    num_train_epochs: float = field(default=3.0, metadata={"help": "training epochs", "range": POSITIVE})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many steps (-1: run all epochs)",
                                                 "range": MAX_STEPS})
    warmup_steps: float = field(default=0.1, metadata={"help": "warm-up steps; below 1, a ratio of all steps",
                                                       "range": NON_NEGATIVE})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay", "range": NON_NEGATIVE})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient-norm clipping", "range": NON_NEGATIVE})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimiser step",
                                                                  "range": AT_LEAST_ONE})
    eval_strategy: str = field(default="epoch", metadata={"help": "evaluate each 'epoch' or every eval_steps 'steps'",
                                                          "choices": ("epoch", "steps")})
    eval_steps: int | None = field(default=None, metadata={"help": "steps between evaluations (eval_strategy=steps)",
                                                           "range": AT_LEAST_ONE})
    logging_steps: int = field(default=10, metadata={"help": "steps between loss logs", "range": AT_LEAST_ONE})
    seed: int = field(default=42, metadata={"help": "seed of initialisation, dropout and data order", "range": SEED})
    train_sampling_strategy: str = field(default="bucket_by_length", metadata={
        "help": "order of training examples: 'bucket_by_length' (Trainer's length-grouped batches, so a batch "
                "wastes little on padding, drawn in random order; seeded per epoch), 'group_by_length' (those "
                "batches in Trainer's order: each mega-batch of 50 batches from longest to shortest) or 'random' "
                "(Trainer's default); see docs/batch-order.md",
        "choices": SAMPLING_STRATEGIES})
    report_to: str = field(default="none", metadata={
        "help": "experiment tracker given the training loss and each evaluation: 'none', 'tensorboard' (event "
                "files in OUTPUT_DIR/logs), 'wandb' or 'mlflow' (each needs its package installed)",
        "choices": TRACKERS})
    run_name: str | None = field(default=None, metadata={"help": "the run's name in the tracker (None: the "
                                                         "tracker's own)"})

    def __post_init__(self):
        check_ranges(self)  # a bad value stops the run here, before any data or model is loaded


@dataclass
class GeneratorSettings:
    """Masked-LM training settings. The defaults give useful candidates from the offline MiniLM in
    about 3 minutes on two CPU cores, whatever the size of the task (see the module docstring)."""

    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate of AdamW for the encoder",
                                                         "range": POSITIVE})
    head_learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate of a new masked-LM head",
                                                              "range": POSITIVE})
    max_steps: int = field(default=300, metadata={"help": "training steps (-1: run num_train_epochs)",
                                                  "range": MAX_STEPS})
    num_train_epochs: float = field(default=3.0, metadata={"help": "training epochs, when max_steps is -1",
                                                           "range": POSITIVE})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "training batch size per device",
                                                                   "range": AT_LEAST_ONE})
    mlm_probability: float = field(default=0.15, metadata={"help": "fraction of tokens masked (BERT's 15%)",
                                                           "range": POSITIVE_FRACTION})
    seed: int = field(default=42, metadata={"help": "seed of the new head, the masking and the data order",
                                            "range": SEED})

    def __post_init__(self):
        check_ranges(self)  # a bad value stops here, before the encoder or the data is loaded


@dataclass
class GeneralKDSettings:
    """General distillation on a text file (`kdbench general-kd`, bench/pipeline/general_kd.py): the text, the
    training and the weights of the two layer-wise terms."""

    max_lines: int = field(default=0, metadata={"help": "use the first N non-empty lines of the file (0: all)",
                                                "range": NON_NEGATIVE})
    eval_lines: int = field(default=200, metadata={"help": "lines held out at the file's end to measure the loss "
                                                   "before and after (at most a tenth of the lines)",
                                                   "range": AT_LEAST_ONE})
    max_length: int = field(default=128, metadata={"help": "tokens per line, truncated (the paper: 512)",
                                                   "range": Range(MIN_MAX_LENGTH)})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate of AdamW", "range": POSITIVE})
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs over the text (the paper: 3)",
                                                           "range": POSITIVE})
    max_steps: int = field(default=-1, metadata={"help": "training steps (-1: run num_train_epochs)",
                                                 "range": MAX_STEPS})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "training batch size per device",
                                                                   "range": AT_LEAST_ONE})
    hidden_weight: float = field(default=1.0, metadata={"help": "weight of the hidden states' error (embeddings "
                                                        "and layers)", "range": NON_NEGATIVE})
    attention_weight: float = field(default=1.0, metadata={"help": "weight of the attention maps' error",
                                                           "range": NON_NEGATIVE})
    seed: int = field(default=42, metadata={"help": "seed of the data order", "range": SEED})

    def __post_init__(self):
        check_ranges(self)
        if not self.hidden_weight and not self.attention_weight:
            raise KdbenchError("general KD with --hidden-weight 0 and --attention-weight 0 learns nothing: "
                               "set one above 0")


@dataclass
class RunConfig:
    """Everything one run depends on; stored whole in its record."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    # the model trained: a student builder (students/) and its parameters, or its short form (teacher-layers:0,2,4,
    # minilm), split when the config is made; finetune-teacher's is the pre-trained encoder it fine-tunes
    student: str = "minilm"
    student_params: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None  # a fine-tuned teacher (distill), or the layer source of a teacher-layers student
    finetune_teacher: bool = False  # distill: fine-tune `teacher` (a pre-trained encoder) first, cached
    teacher_clean_labels: bool = False  # with finetune_teacher and data.label_noise: teacher on the clean labels
    teacher_train: TrainConfig = field(default_factory=TrainConfig)  # settings for that fine-tuning
    # finetune-teacher (and distill with finetune_teacher): checkpoints kept along the teacher's fine-tuning,
    # evenly spaced, the last at its final step (Pro-KD's teacher trajectory); 0: none
    teacher_trajectory: int = field(default=0, metadata={"range": NON_NEGATIVE})
    method: str = "none"
    method_params: dict[str, Any] = field(default_factory=dict)  # the method's parameters, by name
    objective: str = "kd"  # distill: the KD objective (objectives/)
    objective_params: dict[str, Any] = field(default_factory=dict)
    scheme: str = "plain"  # finetune/distill: the training scheme (schemes/)
    scheme_params: dict[str, Any] = field(default_factory=dict)
    selector: str = "all"  # distill: which training rows the student learns from (selection/)
    selector_params: dict[str, Any] = field(default_factory=dict)
    # seed of a pool method's generation (fixed across training seeds, like the subset)
    pool_seed: int = field(default=42, metadata={"range": SEED})
    # distill: which teacher hidden state each student hidden state learns from, as student:teacher pairs
    # (`1:2,2:4,3:6`; 0 the embeddings), for the objectives that match layers; None: the student's own map
    layer_map: str | None = None
    # distill: where the teacher's outputs come from, a teacher source (teachers/): its logits from the cache on
    # disk, computed once per teacher and data (cached), from a forward of each training batch (online), or its
    # logits and the hidden states and attentions a part reads all from the cache (cached-all)
    teacher_outputs: str = "cached"
    teacher_outputs_params: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None
    cache_dir: str | None = None
    resume: bool = False

    def __post_init__(self):
        check_ranges(self)  # the nested configs check themselves when they are built
        self.student, self.student_params = split_student(self.student, self.student_params)
        if self.layer_map is not None:
            parse_layer_map(self.layer_map)
        if self.teacher_clean_labels and not self.finetune_teacher:
            raise KdbenchError("teacher_clean_labels needs finetune_teacher: a teacher given already fine-tuned "
                               "keeps the labels it was trained on")
        paired, paired_params = _declared_objective(self.method)
        if paired and self.objective != paired:
            if self.objective != "kd":
                raise KdbenchError(f"method {self.method} runs with the {paired} objective, not {self.objective}: "
                                   f"leave --objective out, or use --method mate-kd --objective {self.objective}")
            self.objective = paired  # the default objective, taken to mean "the method's own"
        if paired:
            self.objective_params = {**paired_params, **self.objective_params}


def parse_layer_map(text: str) -> dict[int, int]:
    """`"1:2,2:4"` -> `{1: 2, 2: 4}`: student hidden-state index -> teacher's (0: the embeddings)."""
    pairs = {}
    for item in text.split(","):
        student, sep, teacher = item.partition(":")
        try:
            pair = int(student), int(teacher)
        except ValueError:
            pair = None
        if not sep or pair is None or min(pair) < 0 or pair[0] in pairs:
            raise KdbenchError(f"a layer map is student:teacher pairs of hidden-state indices (0: the embeddings), "
                               f"each student index once, e.g. 1:2,2:4,3:6; got {text!r}")
        pairs[pair[0]] = pair[1]
    return pairs


def _declared_objective(method: str) -> tuple[str | None, dict[str, Any]]:
    """The objective a method, or a method of the composition `method`, declares it runs with (Combined-KD's),
    and its parameters; (None, {}) where none does."""
    declared = [d for name in composed(method) if (d := (catalogue.declared("methods", name) or {}).get("objective"))]
    if any(d != declared[0] for d in declared):
        raise KdbenchError(f"method {method}: its methods run with different objectives "
                           f"({', '.join(d['name'] for d in declared)}); compose them otherwise")
    return (declared[0]["name"], declared[0]["params"]) if declared else (None, {})


# Fields added after studies were first stored: left out of a run's identity while at the value that
# earlier versions behaved as, so their studies and run folders keep their names (and a run that
# behaves differently gets another name).
LATER_DEFAULTS = {"objective": "kd", "objective_params": {}, "scheme": "plain", "scheme_params": {},
                  "teacher_clean_labels": False, "teacher_outputs": "cached", "selector": "all", "selector_params": {},
                  "layer_map": None, "teacher_trajectory": 0, "teacher_outputs_params": {}}
LATER_TRAIN_DEFAULTS = {"train_sampling_strategy": "random"}  # of TrainConfig (the default is now bucket_by_length)
LATER_NESTED_DEFAULTS = {  # of the nested settings, by field of RunConfig
    "data": {"label_noise": 0.0, "label_noise_type": "uniform", "label_noise_seed": 0, "eval_task": "",
             "eval_task_examples": None, "attack_recipe": "", "attack_examples": 100,
             "attack_query_budget": 2000, "attack_seed": 0},
    "train": LATER_TRAIN_DEFAULTS,
    "teacher_train": LATER_TRAIN_DEFAULTS,
}
# Fields of TrainConfig that say only where a run's logs go, not what it computes: never part of its
# identity, so tracking a run (or naming it) changes no cache key, run folder or study name.
TRACKING_FIELDS = ("report_to", "run_name")
NOT_IN_IDENTITY = {"train": TRACKING_FIELDS, "teacher_train": TRACKING_FIELDS}  # by field of RunConfig


def stored(config: RunConfig) -> dict[str, Any]:
    """The config as records and studies store it: every field, and the student's short form as `model`
    (the field it had before it was a role), which reports read."""
    return {**asdict(config), "model": student_text(config.student, config.student_params)}


def identity(config: RunConfig) -> dict[str, Any]:
    """The config as a dict for keys and stored studies, without later fields at their earlier values
    and without the tracking fields; the student as its short form `model`, as before it was a role."""
    values = asdict(config)
    values["model"] = student_text(values.pop("student"), values.pop("student_params"))
    for settings, later in LATER_NESTED_DEFAULTS.items():
        values[settings] = _without_defaults(values[settings], later, NOT_IN_IDENTITY.get(settings, ()))
    return _without_defaults(values, LATER_DEFAULTS)


def train_identity(config: TrainConfig) -> dict[str, Any]:
    """Training settings as a dict for keys, without later fields at their earlier values and without
    the tracking fields."""
    return _without_defaults(asdict(config), LATER_TRAIN_DEFAULTS, TRACKING_FIELDS)


def from_identity(values: dict[str, Any]) -> RunConfig:
    """The RunConfig an `identity` or a `stored` config describes: nested settings rebuilt from their
    dicts, the later fields it lacks at the values it ran with (e.g. Trainer's random order), the student
    from its short form `model` where the config has no `student`."""
    nested = {f.name: f.default_factory for f in fields(RunConfig) if is_dataclass(f.default_factory)}
    values = dict(values)
    model = values.pop("model", None)
    if "student" not in values and model is not None:
        values["student"] = model
    return RunConfig(**{k: nested[k](**{**LATER_NESTED_DEFAULTS.get(k, {}), **v}) if k in nested else v
                        for k, v in values.items()})


def _without_defaults(values: dict[str, Any], defaults: dict[str, Any],
                      left_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """`values` less the keys of `defaults` whose value is their default, and less the keys `left_out`."""
    return {k: v for k, v in values.items() if k not in left_out and (k not in defaults or v != defaults[k])}
