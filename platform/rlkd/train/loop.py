"""The per-worker training loop that Ray Train runs on every rank.

All ranks take the same number of steps: each epoch is cut to
`len(train) // (world_size * batch_size)` steps per rank, so no rank waits
in a collective for a peer that ran out of data.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
from ray.experimental.tqdm_ray import tqdm as ray_tqdm
import torch
import torch.distributed as dist
from transformers import get_linear_schedule_with_warmup

from rlkd.constants import LANGS
from rlkd.models import build_student, load_classifier
from rlkd.train.alignment import HIDDEN_ALIGNMENT, AlignedStudent
from rlkd.train.encoding import EncodedSplit, collate, length_bucketed_batches
from rlkd.train.evaluation import all_reduce_counts, count_predictions, metrics_from_counts
from rlkd.train.probes import Prober, choose_probe_data
from rlkd.train.step import LossSettings, build_optimizer, training_step

logger = logging.getLogger(__name__)

WARMUP_SHARE = 0.06
HISTORY_FILE = "history.json"


@dataclass
class LoopSettings:
    """Everything a worker needs, as plain data that pickles into `train_loop_config`."""

    method: str  # "teacher", "none", "kd" or "rl"
    model_source: str | None  # directory or hub id of a pretrained model; None builds a student
    student_config: dict[str, Any] | None  # BertConfig kwargs when model_source is None
    seed: int
    epochs: float
    max_steps: int | None
    batch_size: int
    learning_rate: float
    loss: LossSettings
    kd_weight_init: list[float]
    decision_interval: int
    eval_examples: int | None
    torch_threads: int
    pad_token_id: int
    controller_name: str | None = None
    controller_timeout_s: float = 300.0
    probe_steps: int = 0
    reward_examples: int = 0
    teacher_source: str | None = None  # fine-tuned teacher, run online by hidden-state alignment only
    layer_map: list[tuple[int, int]] | None = None


def steps_per_epoch(num_examples: int, world_size: int, batch_size: int) -> int:
    steps = num_examples // (world_size * batch_size)
    if steps < 1:
        raise ValueError(
            f"the train split has {num_examples} examples, fewer than one batch per worker "
            f"({world_size} workers x batch size {batch_size}); lower the batch size or the number of workers"
        )
    return steps


def total_steps(settings: LoopSettings, num_examples: int, world_size: int) -> int:
    steps = max(1, math.ceil(settings.epochs * steps_per_epoch(num_examples, world_size, settings.batch_size)))
    return min(steps, settings.max_steps) if settings.max_steps else steps


def _rank_batches(lengths: np.ndarray, settings: LoopSettings, rank: int, world_size: int):
    """Yield this rank's batches forever: a seeded shuffle per epoch into length buckets, dealt out by rank."""
    per_rank = steps_per_epoch(len(lengths), world_size, settings.batch_size)
    epoch = 0
    while True:
        epoch_seed = settings.seed * 1000 + epoch
        order = np.random.default_rng(epoch_seed).permutation(len(lengths))
        batches = length_bucketed_batches(order, lengths, settings.batch_size, seed=epoch_seed)
        for step in range(per_rank):
            yield batches[step * world_size + rank]
        epoch += 1


def _build_model(settings: LoopSettings) -> torch.nn.Module:
    if settings.model_source is not None:
        torch.manual_seed(settings.seed)
        return load_classifier(settings.model_source)
    student = build_student(settings.student_config, settings.seed)
    if settings.loss.loss_name != HIDDEN_ALIGNMENT:
        return student
    layer_map = [tuple(pair) for pair in settings.layer_map] if settings.layer_map else None
    return AlignedStudent(student, load_classifier(settings.teacher_source), layer_map)


class _Decisions:
    """Source of the KD weights: a fixed vector, or the controller actor."""

    def __init__(self, settings: LoopSettings, prober: Prober | None):
        self.settings = settings
        self.prober = prober
        self.controller = ray.get_actor(settings.controller_name) if settings.controller_name else None
        self.seconds = 0.0

    def decide(self, decision_id: int, metrics: dict[str, float], progress: float,
               kd_weight: list[float]) -> list[float]:
        if self.controller is None:
            return kd_weight
        started = time.perf_counter()
        timeout = self.settings.controller_timeout_s

        # Every rank sends the same all-reduced metrics; the actor samples a group once per decision id.
        state = {"metrics": metrics, "progress": progress, "kd_weight": kd_weight}
        candidates = ray.get(self.controller.propose.remote(decision_id, ray.put(state)), timeout=timeout)

        rank, world_size = _rank_and_world()
        mine = list(range(rank, len(candidates), world_size))
        before = self.prober.score(self.prober.model)
        after = self.prober.run([candidates[i] for i in mine], seed=self.settings.seed + decision_id)
        gathered = _all_gather_objects({index: result for index, result in zip(mine, after)})
        probe_metrics = [merged for merged in _merge(gathered, len(candidates))]

        outcome = {"before": before, "after": probe_metrics, "probe_steps": self.settings.probe_steps}
        applied = ray.get(self.controller.update.remote(decision_id, ray.put(outcome)), timeout=timeout)
        self.seconds += time.perf_counter() - started
        return list(applied)


def _merge(gathered: list[dict[int, dict]], size: int) -> list[dict]:
    merged: dict[int, dict] = {}
    for part in gathered:
        merged.update(part)
    return [merged[index] for index in range(size)]


def _rank_and_world() -> tuple[int, int]:
    context = ray.train.get_context()
    return context.get_world_rank(), context.get_world_size()


def _all_gather_objects(value: Any) -> list[Any]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _student_of(model: torch.nn.Module) -> torch.nn.Module:
    """Return the Hugging Face student inside DDP and, with hidden-state alignment, inside `AlignedStudent`."""
    model = _unwrap(model)
    return model.student if isinstance(model, AlignedStudent) else model


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Train one model on this rank's shard; report dev metrics every `decision_interval` steps."""
    settings: LoopSettings = loop_config["settings"]
    rank, world_size = _rank_and_world()
    torch.set_num_threads(settings.torch_threads)
    # Dev KD loss is always measured on cached logits; hidden-state alignment trains with its own term.
    metric_loss_name = "forward_kl" if settings.loss.loss_name == HIDDEN_ALIGNMENT else settings.loss.loss_name

    splits: dict[str, EncodedSplit] = ray.get(loop_config["splits"])
    train, dev = splits["train"], splits["dev"]
    dev_indices = np.arange(len(dev))
    if settings.eval_examples and settings.eval_examples < len(dev):
        dev_indices = np.sort(np.random.default_rng(settings.seed).permutation(len(dev))[: settings.eval_examples])
    rank_dev_indices = dev_indices[rank::world_size]

    model = ray.train.torch.prepare_model(_build_model(settings))
    optimizer = build_optimizer(model, settings.learning_rate)
    steps = total_steps(settings, len(train), world_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_SHARE * steps), steps)

    prober = None
    if settings.controller_name:
        probe_data = choose_probe_data(train, dev, probe_steps=settings.probe_steps, batch_size=settings.batch_size,
                                       reward_examples=settings.reward_examples, seed=settings.seed)
        prober = Prober(_unwrap(model), optimizer, probe_data, train, dev, settings.loss, settings.pad_token_id)
    decisions = _Decisions(settings, prober)

    kd_weight = list(settings.kd_weight_init)
    history: list[dict[str, Any]] = []
    lengths = np.asarray([len(ids) for ids in train.input_ids])
    batches = _rank_batches(lengths, settings, rank, world_size)
    started = time.perf_counter()
    train_seconds = 0.0
    examples_seen = 0

    # One bar for the run, drawn by the driver; the other ranks take the same steps.
    progress_bar = ray_tqdm(total=steps, desc=f"{settings.method} training", unit="step") if rank == 0 else None

    model.train()
    for step in range(1, steps + 1):
        step_started = time.perf_counter()
        batch = collate(train, next(batches), settings.pad_token_id)
        loss = training_step(model, optimizer, batch, torch.tensor(kd_weight), settings.loss, scheduler)
        if not torch.isfinite(loss.total):
            raise FloatingPointError(f"loss is {loss.total.item()} at step {step} on rank {rank}")
        train_seconds += time.perf_counter() - step_started
        examples_seen += len(batch["labels"])
        if progress_bar is not None:
            progress_bar.update(1)

        if step % settings.decision_interval != 0 and step != steps:
            continue

        # Dev metrics at a decision point, identical on every rank after the all-reduce.
        counts = count_predictions(
            model, dev, rank_dev_indices, pad_token_id=settings.pad_token_id,
            softmax_temperature=settings.loss.softmax_temperature, kd_loss_name=metric_loss_name,
        )
        metrics = metrics_from_counts(all_reduce_counts(counts))
        record = {"step": step, "kd_weight": list(kd_weight), **metrics}

        if step != steps:
            kd_weight = decisions.decide(step, metrics, step / steps, kd_weight)
        history.append(record)

        report = {
            "step": step,
            "train_loss": float(loss.total.item()),
            "samples_per_s": examples_seen * world_size / max(train_seconds, 1e-9),
            "controller_s": decisions.seconds,
            "wall_s": time.perf_counter() - started,
            **{f"kd_weight/{lang}": value for lang, value in zip(LANGS, record["kd_weight"])},
            **metrics,
        }
        if step != steps:
            ray.train.report(report)
            continue

        # The final report carries the checkpoint; only rank 0 writes it.
        if progress_bar is not None:
            progress_bar.close()
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = None
            if rank == 0:
                _student_of(model).save_pretrained(directory)
                Path(directory, HISTORY_FILE).write_text(json.dumps(history, allow_nan=True))
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(report, checkpoint=checkpoint)
