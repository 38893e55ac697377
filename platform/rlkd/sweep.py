"""`rlkd sweep`: Ray Tune over reward designs and controller settings, one distillation run per trial.

Each trial is a function trainable that builds and fits its own
`TorchTrainer` (Ray Train V2 inside Tune). The Train workers' reports reach
Tune through `TuneReportCallback`, so ASHA stops weak trials at decision
points. The teacher is prepared once by the driver and every trial reads the
same splits from the object store.

A metric that comes out NaN (for example macro-F1 of a language with no dev
example) reaches the scheduler as the worst possible value. So ASHA keeps no
trial for a NaN, and the ranking puts a NaN last. The raw value
stays in the trial's results.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from rlkd.compare import (
    ComparePaths,
    _method_settings,
    check_cluster_fits,
    ensure_ray,
    initial_kd_weight,
    new_run_id,
    prepare_run,
)
from rlkd.config import ConfigError, RunConfig, SweepConfig, _apply, _build
from rlkd.control.controller import start_controller
from rlkd.evaluate import _write_atomic
from rlkd.train.runner import fit

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "sweep"
OBJECTIVE = "objective"  # the sweep metric with NaN replaced by the worst value, which ASHA reads
WORST = {"max": -1e9, "min": 1e9}
CHECKPOINT_PATH_KEY = "checkpoint_path"
DEFAULT_REWARD_TRIALS = [{"controller.reward_design": name}
                         for name in ("macro_f1_gain", "worst_lang_f1_gain", "balanced", "gain_minus_cost")]


class SweepError(RuntimeError):
    """A sweep that cannot start or resume as asked."""


@dataclass
class SweepPaths:
    data_dir: Path
    out_dir: Path
    cache_dir: Path


def objective(value: Any, mode: str) -> float:
    """Return the metric for the scheduler: itself when finite, the worst possible value otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return WORST[mode]
    return value if math.isfinite(value) else WORST[mode]


def best_report(reports: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """Return the report with the best finite metric, or None when no value is finite.

    On ties the latest report wins: Ray 2.60 kept the later of checkpoints
    with equal scores in our runs, so that checkpoint is the one still on disk.
    """
    finite = [(index, report) for index, report in enumerate(reports) if _finite(report.get(metric))]
    if not finite:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(finite, key=lambda item: (sign * float(item[1][metric]), item[0]))[1]


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def trial_overrides(sweep: SweepConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return Tune's param space and the explicit trial list (the default: one trial per reward design)."""
    trials = sweep.trials or ([] if sweep.search_space else DEFAULT_REWARD_TRIALS)
    space: dict[str, Any] = {}
    for name, spec in sweep.search_space.items():
        kind, values = next(iter(spec.items()))
        space[name] = {
            "grid": lambda v: tune.grid_search(v),
            "choice": lambda v: tune.choice(v),
            "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v),
            "randint": lambda v: tune.randint(*v),
        }[kind](values)
    if trials:
        space["trial"] = tune.grid_search(list(range(len(trials))))
    return space, trials


def trial_config(base: dict[str, Any], params: dict[str, Any], trials: list[dict[str, Any]]) -> RunConfig:
    """Apply one trial's sampled fields (and its explicit overrides) to the base config tree."""
    tree = copy.deepcopy(base)
    overrides = {name: value for name, value in params.items() if name != "trial"}
    if "trial" in params:
        overrides.update(trials[params["trial"]])
    for dotted, value in overrides.items():
        _apply(tree, dotted, value)
    return _build(RunConfig, tree, "")


def _check_trials(base: dict[str, Any], sweep: SweepConfig, trials: list[dict[str, Any]]) -> None:
    """Build every explicit trial and every listed grid or choice value now, so a bad value fails before any work."""
    for index in range(len(trials)):
        trial_config(base, {"trial": index}, trials)
    for name, spec in sweep.search_space.items():
        kind, values = next(iter(spec.items()))
        probes = values if kind in ("grid", "choice") else values[:1]
        for value in probes:
            try:
                trial_config(base, {name: value}, [])
            except ConfigError as error:
                raise ConfigError(f"sweep.search_space.{name}: {error}") from None


def _run_trial(params: dict[str, Any], *, base: dict[str, Any], trials: list[dict[str, Any]], splits_ref: list,
               student_kwargs: dict, pad_token_id: int, teacher_source: str, train_split, run_id: str,
               storage_path: str, out_dir: str) -> None:
    """Run one Tune trial: a full distillation of `sweep.method` with this trial's config."""
    config = trial_config(base, params, trials)
    method = config.sweep.method
    trial_id = tune.get_context().get_trial_id()
    name = f"{run_id}-{trial_id}"

    kd_weight_init = initial_kd_weight(config, method, train_split)
    controller_name = controller = None
    if method == "rl":
        controller_name = f"rlkd-controller-{name}"
        controller = start_controller(controller_name, config.controller, kd_weight_init, config.seed,
                                      snapshot_path=Path(storage_path) / f"{name}-controller.pt",
                                      max_restarts=config.controller.max_restarts, run=name)
    settings = _method_settings(config, method, config.seed, kd_weight_init, student_kwargs, pad_token_id,
                                controller_name, teacher_source)
    try:
        fit(settings, splits_ref[0], config.scaling, storage_path=Path(storage_path), run_name=name,
            output_dir=Path(out_dir) / "trials" / trial_id / "student",
            callbacks=[_objective_callback(config.sweep.metric, config.sweep.mode)],
            keep_best=(config.sweep.metric, config.sweep.mode))
    finally:
        if controller is not None:
            ray.kill(controller)


def _objective_callback(metric: str, mode: str):
    """Build Tune's report callback, which adds the NaN-safe objective to every report before Tune reads it."""
    from ray.tune.integration.ray_train import TuneReportCallback  # needs a Tune session, so built per trial

    class ObjectiveReportCallback(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            for report in metrics:
                report[OBJECTIVE] = objective(report.get(metric), mode)
            super().after_report(run_context, metrics, checkpoint)

    return ObjectiveReportCallback()


def tune_config(sweep: SweepConfig, max_concurrent_trials: int) -> tune.TuneConfig:
    """ASHA on the NaN-safe objective, one rung step per report (decision point)."""
    return tune.TuneConfig(
        metric=OBJECTIVE, mode=sweep.mode, num_samples=sweep.num_samples, max_concurrent_trials=max_concurrent_trials,
        scheduler=ASHAScheduler(time_attr="training_iteration", grace_period=sweep.grace_period,
                                reduction_factor=sweep.reduction_factor, max_t=10**6),
    )


def _concurrency(config: RunConfig) -> int:
    if config.sweep.max_concurrent_trials:
        return config.sweep.max_concurrent_trials
    # check_cluster_fits has already made sure that one trial fits.
    per_trial = config.scaling.num_workers * config.scaling.cpus_per_worker
    return max(1, int(ray.cluster_resources().get("CPU", 1) // per_trial))


def run_sweep(config: RunConfig, paths: SweepPaths, *, resume: bool = False) -> Path:
    """Run or resume the sweep, then write sweep.csv and sweep.md to the output folder."""
    out_dir = paths.out_dir
    storage_path = out_dir / "ray"
    experiment = storage_path / EXPERIMENT_NAME
    if resume and not tune.Tuner.can_restore(str(experiment)):
        raise SweepError(f"nothing to resume in {out_dir}: no sweep state at {experiment}")
    if not resume and experiment.exists():
        raise SweepError(f"{out_dir} already contains a sweep: pass --resume to continue it, or choose another --out")
    ensure_ray()
    check_cluster_fits(config.scaling)  # before the output folder exists, so a config error leaves nothing behind
    out_dir.mkdir(parents=True, exist_ok=True)

    # A resumed sweep keeps the config it started with.
    config_path = out_dir / "sweep_config.json"
    if resume:
        base = json.loads(config_path.read_text())
        config = _build(RunConfig, copy.deepcopy(base), "")
    else:
        base = asdict(config)
        _write_atomic(config_path, json.dumps(base, indent=2))
    space, trials = trial_overrides(config.sweep)
    _check_trials(base, config.sweep, trials)

    run_id = new_run_id()
    prepared = prepare_run(config, ComparePaths(paths.data_dir, out_dir, paths.cache_dir), run_id, storage_path)
    trainable = tune.with_parameters(
        # with_parameters resolves a bare ObjectRef, so the ref travels inside a list and reaches the trial as a ref.
        _run_trial, base=base, trials=trials, splits_ref=[prepared.splits_ref], student_kwargs=prepared.student_kwargs,
        pad_token_id=prepared.student_tokenizer.pad_token_id, teacher_source=str(prepared.teacher.model_dir),
        train_split=prepared.distill_splits["train"], run_id=run_id, storage_path=str(storage_path),
        out_dir=str(out_dir),
    )
    # The trial function only waits on its TorchTrainer, whose workers reserve the CPUs. Ray rejects an
    # empty resource request, so the trial requests 64 MiB of memory and no CPU.
    trainable = tune.with_resources(trainable, {"CPU": 0, "memory": 64 * 1024**2})

    started = time.perf_counter()
    if resume:
        logger.info("resuming the sweep in %s", experiment)
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune_config(config.sweep, _concurrency(config)),
            run_config=tune.RunConfig(name=EXPERIMENT_NAME, storage_path=str(storage_path.resolve()), verbose=1),
        )
    result_grid = tuner.fit()

    table = summarise_trials(result_grid, config.sweep, trials)
    write_sweep_outputs(table, config.sweep, out_dir)
    logger.info("sweep finished in %.1f min: %s", (time.perf_counter() - started) / 60, out_dir / "sweep.md")
    return out_dir


def summarise_trials(result_grid, sweep: SweepConfig, trials: list[dict[str, Any]]) -> pd.DataFrame:
    """Build one row per trial (settings, last and best metric, reports, status, best checkpoint), best first."""
    rows = []
    for result in result_grid:
        # The trial's settings: sampled fields plus its explicit overrides.
        params = dict(result.config or {})
        settings = {name: value for name, value in params.items() if name != "trial"}
        if "trial" in params:
            settings.update(trials[params["trial"]])

        reports = [] if result.metrics_dataframe is None else result.metrics_dataframe.to_dict("records")
        best = best_report(reports, sweep.metric, sweep.mode)
        last = reports[-1] if reports else {}
        rows.append({
            "trial_id": (result.metrics or {}).get("trial_id", Path(result.path).name if result.path else ""),
            **{f"config:{name}": value for name, value in sorted(settings.items())},
            f"best {sweep.metric}": best[sweep.metric] if best else math.nan,
            f"last {sweep.metric}": last.get(sweep.metric, math.nan),
            "macro_f1/all (best report)": best.get("macro_f1/all", math.nan) if best else math.nan,
            "reports": len(reports),
            "last step": last.get("step", math.nan),
            "controller_s": last.get("controller_s", math.nan),
            # Tune's trial time includes worker start-up and evaluation, unlike the loop's own wall_s.
            "trial_s": (result.metrics or {}).get("time_total_s", math.nan),
            "status": _status(result.error, last),
            "best checkpoint": best.get(CHECKPOINT_PATH_KEY, "") if best else "",
        })

    # A field that only some trials set shows "default" in the others, which keeps its column free of NaN floats.
    config_columns = sorted({column for row in rows for column in row if column.startswith("config:")})
    for row in rows:
        for column in config_columns:
            row.setdefault(column, "default")

    table = pd.DataFrame(rows)
    if table.empty:
        return table
    first = ["trial_id", *config_columns]
    table = table[first + [column for column in table.columns if column not in first]]

    # Best first, NaN last, and ties in trial order, so a resumed sweep ranks exactly as the first run did.
    key = f"best {sweep.metric}"
    sign = -1.0 if sweep.mode == "max" else 1.0
    table["_rank"] = table[key].map(lambda value: sign * objective(value, sweep.mode))
    table = table.sort_values(["_rank", "trial_id"], kind="stable").drop(columns="_rank")
    return table.reset_index(drop=True)


def _status(error, last: dict[str, Any]) -> str:
    if error:
        return "error"
    if not last:
        return "no report"
    return "completed" if last.get("step") == last.get("total_steps") else "stopped early"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def write_sweep_outputs(table: pd.DataFrame, sweep: SweepConfig, out_dir: Path) -> None:
    _write_atomic(out_dir / "sweep.csv", table.to_csv(index=False, float_format="%.4f"))
    lines = ["# rlkd sweep", ""]
    trial_minutes = table["trial_s"].sum() / 60 if "trial_s" in table else math.nan
    lines.append(f"{len(table)} trials, metric `{sweep.metric}` ({sweep.mode}), ASHA grace period "
                 f"{sweep.grace_period}, reduction factor {sweep.reduction_factor:g}; "
                 f"{trial_minutes:.1f} trial-minutes in all.")
    lines.append("")
    key = f"best {sweep.metric}"
    if table.empty or not _finite(table.iloc[0][key]):
        lines.append("No trial reported a finite value of the metric.")
    else:
        best = table.iloc[0]
        lines.append("## Best config")
        lines.append("")
        for column in table.columns:
            if column.startswith("config:"):
                lines.append(f"- {column[len('config:'):]}: {best[column]}")
        lines.append(f"- {key}: {best[key]:.4f} (trial {best['trial_id']})")
        lines.append("")
    lines.append("## Top 5")
    lines.append("")
    columns = ["trial_id", *[c for c in table.columns if c.startswith("config:")], key, "macro_f1/all (best report)",
               "reports", "controller_s", "trial_s", "status"]
    lines.append("| " + " | ".join(c.replace("config:", "") for c in columns) + " |")
    lines.append("| " + " | ".join("---" for _ in columns) + " |")
    for _, row in table.head(5).iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    lines.append("")
    _write_atomic(out_dir / "sweep.md", "\n".join(lines))
