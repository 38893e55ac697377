"""`rlkd compare`: the teacher and one student per method and seed, on the same data and step budget."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
import torch

from rlkd.baselines import GroupDRO, language_shares, temperature_weights
from rlkd.config import ConfigError, RunConfig, ScalingConfig, _build
from rlkd.constants import LANGS, OTHER
from rlkd.control.controller import start_controller
from rlkd.data import DataError, prepare_splits
from rlkd.evaluate import (
    MethodSummary,
    _write_atomic,
    plot_f1_by_language,
    plot_kd_weights,
    render_report,
    score_logits,
    write_report,
    write_results_csv,
)
from rlkd.models import count_parameters, load_classifier, load_tokenizer, student_config_kwargs
from rlkd.teacher import Teacher, compute_logits, prepare_teacher
from rlkd.tokenizer import train_wordpiece_tokenizer
from rlkd.train.encoding import EncodedSplit, encode_split
from rlkd.train.loop import LoopSettings
from rlkd.train.runner import fit
from rlkd.train.step import LossSettings

logger = logging.getLogger(__name__)


@dataclass
class ComparePaths:
    data_dir: Path
    out_dir: Path
    cache_dir: Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("RLKD_CACHE_DIR", Path.home() / ".cache" / "rlkd"))


RUN_ID_PLACEHOLDER = "{run_id}"
RUN_STATE_FILE = "run.json"  # run id and config, written first, so --resume can pick the run up
SUMMARY_FILE = "summary.json"  # beside each finished student: its scores, written last


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def expand_run_id(out_dir: Path, run_id: str) -> Path:
    """Replace `{run_id}` in `--out` with the run id, so one command submitted twice writes two folders."""
    return Path(str(out_dir).replace(RUN_ID_PLACEHOLDER, run_id))


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def storage_location(config: RunConfig, out_dir: Path) -> str:
    """Ray Train's storage: `storage_path` as given when it is a URI, else an absolute local folder."""
    if config.storage_path is None:
        return str((out_dir / "ray").resolve())
    if is_uri(config.storage_path):
        return config.storage_path
    return str(Path(config.storage_path).expanduser().resolve())


def ensure_ray() -> None:
    """Join the cluster of RAY_ADDRESS (set for `ray job` drivers) or of `ray start` on this machine, else start one.

    Ray records a head started with `ray start` in /tmp/ray/ray_current_cluster, and `ray.init()`
    joins it; without one, a local Ray starts inside this process.
    """
    if not ray.is_initialized():
        context = ray.init(logging_level=logging.WARNING)
        logger.info("Ray cluster at %s", context.address_info.get("gcs_address"))


def check_cluster_fits(scaling: ScalingConfig) -> None:
    """Fail before any work when the Ray cluster cannot hold the configured workers at once."""
    resources = ray.cluster_resources()
    needed_cpus = scaling.num_workers * scaling.cpus_per_worker
    if needed_cpus > resources.get("CPU", 0):
        raise ConfigError(
            f"invalid value for scaling.num_workers: {scaling.num_workers} workers x scaling.cpus_per_worker="
            f"{scaling.cpus_per_worker:g} need {needed_cpus:g} CPUs, but the Ray cluster has "
            f"{resources.get('CPU', 0):g} (allowed: num_workers x cpus_per_worker <= cluster CPUs)"
        )
    if scaling.use_gpu and scaling.num_workers > resources.get("GPU", 0):
        raise ConfigError(
            f"invalid value for scaling.use_gpu: true with {scaling.num_workers} workers, but the Ray cluster has "
            f"{resources.get('GPU', 0):g} GPUs (allowed: false, or num_workers <= cluster GPUs)"
        )


def _check_splits(splits: dict, data_dir: Path) -> None:
    """Stop on an empty split; warn when no tweet carries a language tag, since per-language weights then mean nothing."""
    hints = {"train": "no train file was found", "dev": "raise data.dev_fraction or add a dev file",
             "test": "name a test file with the word test or trial, for example test.csv"}
    for name, frame in splits.items():
        if len(frame) == 0:
            raise DataError(f"the {name} split of {data_dir} is empty: {hints.get(name, 'add data')}")

    untagged = splits["train"]["langs"].map(lambda langs: all(lang == OTHER for lang in langs))
    if untagged.all():
        logger.warning("no train tweet has a language tag in %s: every tweet gets its pair's default language "
                       "proportions, so per-language metrics and weights follow the pair, not the text", data_dir)


def initial_kd_weight(config: RunConfig, method: str, train: EncodedSplit) -> list[float]:
    """The weights a method starts from: temperature-scaled shares, uniform for dro, the configured vector otherwise."""
    if method == "temperature":
        return temperature_weights(language_shares(train.lang_proportions), config.baselines.temperature_tau)
    if method == "dro":
        return GroupDRO(config.baselines.dro_step_size).weights()
    return list(config.distill.kd_weight_init)


def _method_settings(config: RunConfig, method: str, seed: int, kd_weight_init: list[float], student_kwargs: dict,
                     pad_token_id: int, controller_name: str | None, teacher_source: str | None) -> LoopSettings:
    distill = config.distill
    kd_coefficient = 0.0 if method == "none" else distill.kd_coefficient
    return LoopSettings(
        method=method,
        model_source=None,
        student_config=student_kwargs,
        seed=seed,
        epochs=config.student.epochs,
        max_steps=config.student.max_steps,
        batch_size=config.student.batch_size,
        learning_rate=config.student.learning_rate,
        loss=LossSettings(distill.loss, distill.softmax_temperature, kd_coefficient, distill.ce_weight),
        kd_weight_init=list(kd_weight_init),
        decision_interval=distill.decision_interval,
        eval_examples=distill.eval_examples,
        torch_threads=config.scaling.threads_per_worker,
        pad_token_id=pad_token_id,
        controller_name=controller_name,
        controller_timeout_s=config.controller.timeout_s,
        teacher_source=teacher_source,
        layer_map=[tuple(pair) for pair in distill.layer_map] if distill.layer_map else None,
        probe_steps=config.controller.probe_steps if controller_name else 0,
        reward_examples=config.controller.reward_examples if controller_name else 0,
        dro_step_size=config.baselines.dro_step_size if method == "dro" else None,
        dro_loss=config.baselines.dro_loss,
        estimator=config.controller.estimator,
        max_skipped_batches=distill.max_skipped_batches,
    )


def _test_scores(model_dir: Path, test: EncodedSplit, pad_token_id: int) -> tuple[dict, int]:
    model = load_classifier(str(model_dir), num_labels_required=True)
    logits = compute_logits(model, test, pad_token_id, description=f"test ({model_dir.name})")
    return score_logits(test, logits), count_parameters(model)


@dataclass
class PreparedRun:
    """Data, teacher and student inputs shared by every student of a compare run or a sweep."""

    splits: dict  # name -> prepared DataFrame
    encoded: dict[str, EncodedSplit]  # teacher tokenisation
    teacher: Teacher
    student_tokenizer: object
    distill_splits: dict[str, EncodedSplit]  # train and dev with teacher logits, student tokenisation
    splits_ref: ray.ObjectRef
    student_kwargs: dict
    test: EncodedSplit  # student tokenisation, with teacher logits
    teacher_seconds: float


@dataclass
class TeacherStage:
    """The data of a run, encoded with the teacher's tokenizer, and the teacher with its logits for every example."""

    splits: dict  # name -> prepared DataFrame
    tokenizer: object
    encoded: dict[str, EncodedSplit]
    teacher: Teacher
    seconds: float


def prepare_teacher_stage(config: RunConfig, paths: ComparePaths, run_id: str, storage_path: str | Path) -> TeacherStage:
    """Read, split and encode the data, then get the teacher: from the cache, or fine-tuned now."""
    # Data: read, split and encode once, so every method trains on the same arrays.
    data = config.data
    splits = prepare_splits(paths.data_dir, paths.cache_dir / "data", dev_fraction=data.dev_fraction, seed=data.seed,
                            mode=data.mode, max_tweets_per_file=data.max_tweets_per_file, tag_maps=data.tag_maps)
    _check_splits(splits, paths.data_dir)
    tokenizer = load_tokenizer(config.teacher.checkpoint or config.teacher.backbone)
    encoded = {name: encode_split(frame, tokenizer, data.max_length) for name, frame in splits.items()}
    logger.info("data: %s", ", ".join(f"{name} {len(split)}" for name, split in encoded.items()))

    # Teacher: fine-tuned once per config and data, then reused from the cache.
    started = time.perf_counter()
    teacher_splits_ref = ray.put({"train": encoded["train"], "dev": encoded["dev"]})
    teacher = prepare_teacher(config, encoded, teacher_splits_ref, tokenizer.pad_token_id, cache_dir=paths.cache_dir,
                              storage_path=storage_path, run_name=run_id)
    del teacher_splits_ref
    return TeacherStage(splits, tokenizer, encoded, teacher, time.perf_counter() - started)


def prepare_run(config: RunConfig, paths: ComparePaths, run_id: str, storage_path: str | Path) -> PreparedRun:
    """Prepare data and teacher, then the students' inputs, and put the student's splits in Ray.

    The caller starts Ray and calls `check_cluster_fits` first, before it creates any output.
    """
    stage = prepare_teacher_stage(config, paths, run_id, storage_path)
    splits, encoded, teacher = stage.splits, stage.encoded, stage.teacher

    # Students use the teacher's tokenisation unless they get a tokenizer of their own.
    # Teacher logits are matched by example id, so every example keeps its soft labels either way.
    student_tokenizer, student_encoded = stage.tokenizer, encoded
    if config.student.tokenizer == "corpus":
        student_tokenizer = train_wordpiece_tokenizer(
            splits["train"]["text"], paths.out_dir / "students" / "tokenizer", vocab_size=config.student.vocab_size
        )
        student_encoded = {name: encode_split(frame, student_tokenizer, config.data.max_length)
                           for name, frame in splits.items()}
    pad_token_id = student_tokenizer.pad_token_id

    distill_splits = {name: student_encoded[name].with_teacher_logits(teacher.logits_by_id) for name in ("train", "dev")}
    return PreparedRun(
        splits=splits,
        encoded=encoded,
        teacher=teacher,
        student_tokenizer=student_tokenizer,
        distill_splits=distill_splits,
        splits_ref=ray.put(distill_splits),
        student_kwargs=student_config_kwargs(config.student, len(student_tokenizer), pad_token_id),
        test=student_encoded["test"].with_teacher_logits(teacher.logits_by_id),
        teacher_seconds=stage.seconds,
    )


def read_run_state(out_dir: Path) -> tuple[str, RunConfig]:
    """Read the run id and config of the compare run in `out_dir`, for --resume."""
    path = out_dir / RUN_STATE_FILE
    if not path.is_file():
        raise ConfigError(f"nothing to resume in {out_dir}: no {RUN_STATE_FILE} of an `rlkd compare` run there "
                          f"(pass the run's own folder, with {RUN_ID_PLACEHOLDER} filled in)")
    try:
        state = json.loads(path.read_text())
        return state["run_id"], _build(RunConfig, state["config"], "")
    except (ValueError, KeyError) as error:
        raise ConfigError(f"cannot resume from {path}: {error}") from None


def run_compare(config: RunConfig, paths: ComparePaths, *, resume: bool = False) -> Path:
    """Run every configured method and seed; write results.csv, report.md, the plots and the checkpoints.

    With `resume`, `paths.out_dir` is an interrupted run's folder, and the run keeps its id and config.
    Finished students are read back from their summaries. An interrupted Train run continues from its
    latest checkpoint, because it keeps its name and storage path.
    """
    if resume:
        run_id, config = read_run_state(paths.out_dir)
        logger.info("resuming compare run %s in %s with the config it started with", run_id, paths.out_dir)
    else:
        run_id = new_run_id()
    ensure_ray()
    check_cluster_fits(config.scaling)  # before the output folder exists, so a config error leaves nothing behind
    out_dir = expand_run_id(paths.out_dir, run_id)
    paths = ComparePaths(paths.data_dir, out_dir, paths.cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_atomic(out_dir / RUN_STATE_FILE, json.dumps({"run_id": run_id, "config": asdict(config)}, indent=2))
    storage_path = storage_location(config, out_dir)
    logger.info("compare run %s: methods %s, %d seed(s), output in %s", run_id, ",".join(config.methods),
                config.seeds, out_dir)

    prepared = prepare_run(config, paths, run_id, storage_path)
    teacher, encoded, student_tokenizer = prepared.teacher, prepared.encoded, prepared.student_tokenizer
    teacher_test = encoded["test"].with_teacher_logits(teacher.logits_by_id)
    teacher_note = "from cache" if teacher.cached else "fine-tuned in this run"
    summaries = [MethodSummary("teacher", score_logits(teacher_test, teacher_test.teacher_logits),
                               teacher.num_parameters, prepared.teacher_seconds,
                               notes=f"{teacher_note}; {teacher.model_dir}", seed=config.seed)]
    test, splits_ref, student_kwargs = prepared.test, prepared.splits_ref, prepared.student_kwargs
    distill_splits = prepared.distill_splits

    # Students: every method with every seed; the teacher stays the one of the base seed.
    for seed in range(config.seed, config.seed + config.seeds):
        for method in config.methods:
            kd_weight_init = initial_kd_weight(config, method, distill_splits["train"])
            summaries.append(_run_method(config, method, seed, kd_weight_init, run_id, splits_ref, student_kwargs,
                                         student_tokenizer, test, storage_path, out_dir, str(teacher.model_dir)))

    # Report.
    write_results_csv(summaries, out_dir / "results.csv")
    test_sizes = {lang: int((test.language_index == index).sum()) for index, lang in enumerate(LANGS)}
    run_settings = {
        "run id": run_id,
        "data": str(paths.data_dir),
        "train / dev / test tweets": f"{len(encoded['train'])} / {len(encoded['dev'])} / {len(encoded['test'])}",
        "workers": f"{config.scaling.num_workers} ({'GPU' if config.scaling.use_gpu else 'CPU'})",
        "student": f"{config.student.num_layers} layers, hidden {config.student.hidden_size}, "
                   f"{config.student.tokenizer} tokenizer ({len(student_tokenizer)} tokens)",
        "distillation": f"{config.distill.loss}, T={config.distill.softmax_temperature}, "
                        f"kd_coefficient={config.distill.kd_coefficient}, ce_weight={config.distill.ce_weight}",
        "seeds": ", ".join(str(seed) for seed in range(config.seed, config.seed + config.seeds)),
        "controller": f"{config.controller.reward_design}, {config.controller.estimator} estimator, "
                      f"G={config.controller.group_size}, probe_steps={config.controller.probe_steps}, "
                      f"decision_interval={config.distill.decision_interval}",
        "baselines": f"dro step size {config.baselines.dro_step_size} on dev {config.baselines.dro_loss}, "
                     f"temperature tau {config.baselines.temperature_tau}",
        "torch / ray": f"{torch.__version__} / {ray.__version__}",
    }
    report = render_report(summaries, kd_weight_init=list(config.distill.kd_weight_init), test_sizes=test_sizes,
                           run_settings=run_settings)
    write_report(report, out_dir / "report.md")
    plot_kd_weights(summaries, out_dir / "kd_weights.png")
    plot_f1_by_language(summaries, out_dir / "f1_by_lang.png")
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    logger.info("compare run %s done: %s", run_id, out_dir / "report.md")
    return out_dir


def _run_method(config: RunConfig, method: str, seed: int, kd_weight_init: list[float], run_id: str, splits_ref,
                student_kwargs: dict, tokenizer, test: EncodedSplit, storage_path: str, out_dir: Path,
                teacher_source: str) -> MethodSummary:
    pad_token_id = tokenizer.pad_token_id
    started = time.perf_counter()
    controller_name = None
    controller = None
    # One seed keeps the plain layout students/<method>; several get a folder per seed.
    name = method if config.seeds == 1 else f"{method}-seed{seed}"
    if method == "rl":
        # Named per run and seed, so two runs on one cluster never share a controller.
        controller_name = f"rlkd-controller-{run_id}-{name}"
        controller = start_controller(controller_name, config.controller, kd_weight_init, seed,
                                      snapshot_path=out_dir / "controller" / f"{run_id}-{name}.pt",
                                      max_restarts=config.controller.max_restarts, run=f"{run_id}-{name}")

    settings = _method_settings(config, method, seed, kd_weight_init, student_kwargs, pad_token_id, controller_name,
                                teacher_source)
    output_dir = out_dir / "students" / (method if config.seeds == 1 else f"{method}/seed{seed}")
    finished = _read_summary(output_dir)
    if finished is not None:
        logger.info("%s (seed %d): finished before the resume, test macro-F1 %.3f", method, seed,
                    finished.scores["all"]["macro_f1"])
        return finished
    try:
        result = fit(settings, splits_ref, config.scaling, storage_path=storage_path, run_name=f"{run_id}-{name}",
                     output_dir=output_dir)
        notes = f"{result.history[-1]['step']} steps, {result.metrics.get('samples_per_s', float('nan')):.0f} samples/s"
        if controller is not None:
            decisions = ray.get(controller.history.remote())
            history_name = "controller_history.json" if config.seeds == 1 else f"controller_history_seed{seed}.json"
            (out_dir / history_name).write_text(json.dumps(decisions, indent=1))
            notes += f", {len(decisions)} decisions, controller {result.metrics.get('controller_s', 0):.0f} s"
    finally:
        if controller is not None:
            ray.kill(controller)

    # With its tokenizer beside it, a student loads with the usual Auto* classes alone.
    tokenizer.save_pretrained(result.checkpoint_dir)
    scores, num_parameters = _test_scores(result.checkpoint_dir, test, pad_token_id)
    logger.info("%s (seed %d): test macro-F1 %.3f (%s)", method, seed, scores["all"]["macro_f1"],
                ", ".join(f"{lang} {scores[lang]['macro_f1']:.3f}" for lang in LANGS))
    # Durations end in _s; rates such as samples_per_s are not timings.
    timings = {name: float(value) for name, value in result.metrics.items()
               if name.endswith("_s") and not name.endswith("_per_s")}
    summary = MethodSummary(method, scores, num_parameters, time.perf_counter() - started, result.history, notes, seed,
                            timings)
    _write_atomic(output_dir / SUMMARY_FILE, json.dumps(asdict(summary)))
    return summary


def _read_summary(output_dir: Path) -> MethodSummary | None:
    """The summary of a student finished by an earlier attempt of this run; None when it must be trained."""
    path = output_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return MethodSummary(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise DataError(f"cannot read the student summary {path}: {error}") from None

