"""Build and fit the Ray Train `TorchTrainer` for one model."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import json

import ray
import ray.train
from ray.train.torch import TorchTrainer

from rlkd.config import ScalingConfig
from rlkd.train.loop import HISTORY_FILE, TRAIN_STATE_FILE, LoopSettings, train_loop_per_worker

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A Ray Train run that failed; the message carries the worker's error."""


@dataclass
class FitResult:
    checkpoint_dir: Path  # a local copy of the final checkpoint (save_pretrained layout + history.json)
    metrics: dict[str, Any]  # the last report of rank 0
    history: list[dict[str, Any]]  # one record per decision point


def fit(settings: LoopSettings, splits_ref: ray.ObjectRef, scaling: ScalingConfig, *, storage_path: str | Path,
        run_name: str, output_dir: Path, callbacks: list | None = None,
        keep_best: tuple[str, str] | None = None) -> FitResult:
    """Train with `settings` on the splits behind `splits_ref`; copy the final checkpoint to `output_dir`."""
    resources = {"CPU": scaling.cpus_per_worker}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"settings": settings, "splits": splits_ref, "run_name": run_name},
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=scaling.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            # A URI (s3://, gs://, file://) goes to Ray as given; a local folder becomes absolute.
            storage_path=str(storage_path) if "://" in str(storage_path) else str(Path(storage_path).resolve()),
            # A failed worker group restarts from the latest checkpoint, up to max_failures times.
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            # Two checkpoints kept: the latest ones, or with keep_best=(metric, mode) the two best by that
            # metric (NaN ranks lowest) besides the latest, which Ray always keeps for resuming.
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute=keep_best[0] if keep_best else None,
                checkpoint_score_order=keep_best[1] if keep_best else "max",
            ),
            callbacks=callbacks or [],
        ),
    )

    try:
        result = trainer.fit()
    except Exception as error:  # Ray wraps worker errors in its own types; keep the root cause's text
        raise TrainingError(f"training '{run_name}' failed: {_root_message(error)}") from error
    if result.error is not None:
        raise TrainingError(f"training '{run_name}' failed: {_root_message(result.error)}")
    if result.checkpoint is None:
        raise TrainingError(f"training '{run_name}' ended without a checkpoint")

    output_dir = Path(output_dir)
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with result.checkpoint.as_directory() as directory:
        # The optimiser state only matters for resuming, and stays in Ray's storage for that.
        shutil.copytree(directory, staging, ignore=shutil.ignore_patterns(TRAIN_STATE_FILE))
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)

    history = json.loads((output_dir / HISTORY_FILE).read_text())
    return FitResult(checkpoint_dir=output_dir, metrics=dict(result.metrics or {}), history=history)


def _root_message(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
