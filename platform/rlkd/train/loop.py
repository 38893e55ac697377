"""The per-worker training loop that Ray Train runs on every rank.

All ranks take the same number of steps: each epoch is cut to
`len(train) // (world_size * batch_size)` steps per rank, so no rank waits
in a collective for a peer that ran out of data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
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

from rlkd.baselines import GroupDRO
from rlkd.constants import LANGS
from rlkd.models import build_student, load_classifier
from rlkd.train.alignment import HIDDEN_ALIGNMENT, AlignedStudent
from rlkd.train.encoding import EncodedSplit, collate, length_bucketed_batches
from rlkd.train.evaluation import all_reduce_counts, count_predictions_with_subset, metrics_from_counts
from rlkd.train.exporter import MetricsExporter
from rlkd.train.lookahead import LookaheadEstimator
from rlkd.train.probes import Prober, choose_probe_data
from rlkd.train.step import LossSettings, apply_gradients, build_optimizer, compute_loss, non_finite_rows

logger = logging.getLogger(__name__)

WARMUP_SHARE = 0.06
HISTORY_FILE = "history.json"
STALL_IN_CHECKPOINT_ENV = "RLKD_FAULT_STALL_IN_CHECKPOINT"  # "<method>:<step>:<marker file>", for fault tests
TRAIN_STATE_FILE = "train_state.pt"
CONTROLLER_STATE_FILE = "controller_state.pt"


@dataclass
class LoopSettings:
    """Everything a worker needs, as plain data that pickles into `train_loop_config`."""

    method: str  # "teacher" or one of METHODS
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
    dro_step_size: float | None = None  # set for the `dro` method only
    estimator: str = "probe"  # how the controller's candidates are scored: probe or lookahead
    max_skipped_batches: int = 10  # batches with a non-finite loss that are skipped before the run stops
    # Fault injection for tests: fail once at this step, unless the marker file exists (then create it).
    # "raise" raises in the training function; "exit" kills rank 0's process, as a lost node would.
    inject_failure_at_step: int | None = None
    inject_failure_marker: str | None = None
    inject_failure_kind: str = "raise"
    dro_loss: str = "ce_loss"


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
    """Source of the KD weights: a fixed vector, the Group DRO rule, or the controller actor."""

    def __init__(self, settings: LoopSettings, prober: Prober | LookaheadEstimator | None):
        self.settings = settings
        self.prober = prober
        self.controller = ray.get_actor(settings.controller_name) if settings.controller_name else None
        self.dro = GroupDRO(settings.dro_step_size) if settings.dro_step_size else None
        self.seconds = 0.0
        # Where controller seconds go: the propose and update calls (metric exchange and the policy
        # update on the actor) and the probes or lookahead estimates on this worker.
        self.parts = {"propose_s": 0.0, "estimate_s": 0.0, "update_s": 0.0}
        self.gaps = 0  # decisions skipped because the controller was unreachable

    def decide(self, decision_id: int, metrics: dict[str, float], progress: float,
               kd_weight: list[float], reward_before: dict[str, float] | None = None) -> list[float]:
        if self.dro is not None:
            # Every rank has the same all-reduced metrics, so every rank computes the same weights.
            return self.dro.update([metrics[f"{self.settings.dro_loss}/{lang}"] for lang in LANGS])
        if self.controller is None:
            return kd_weight
        started = time.perf_counter()
        try:
            return self._decide_with_controller(decision_id, metrics, progress, kd_weight, reward_before)
        finally:
            self.seconds += time.perf_counter() - started

    def _decide_with_controller(self, decision_id: int, metrics: dict[str, float], progress: float,
                                kd_weight: list[float], reward_before: dict[str, float] | None) -> list[float]:
        # Every rank sends the same all-reduced metrics, and the actor samples a group once per decision id.
        state = {"metrics": metrics, "progress": progress, "kd_weight": kd_weight}
        with self._timed("propose_s"):
            candidates = self._call("propose", decision_id, state)

        # Ranks agree before any collective: if one rank could not reach the controller, all keep their weights.
        if _any_rank(candidates is None):
            return self._gap(decision_id, kd_weight, "no candidates")
        candidates = _from_rank0(candidates)

        with self._timed("estimate_s"):
            if isinstance(self.prober, LookaheadEstimator):
                outcome = self.prober.outcome(candidates)
            else:
                outcome = self._probe(decision_id, candidates, reward_before)
        with self._timed("update_s"):
            applied = self._call("update", decision_id, outcome)

        # Rank 0's result is the one applied, so all ranks train with the same weights.
        failed = _from_rank0(applied is None)
        applied = _from_rank0(list(applied) if applied is not None else list(kd_weight))
        if failed:
            return self._gap(decision_id, kd_weight, "no update")
        return applied

    @contextlib.contextmanager
    def _timed(self, part: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.parts[part] += time.perf_counter() - started

    def _call(self, method: str, decision_id: int, payload: dict[str, Any]) -> Any:
        """Call the controller actor; return None when it is dead, or still unavailable after the timeout.

        A restarting actor raises ActorUnavailableError at once, so the
        call is retried every second until `controller_timeout_s` has passed.
        """
        deadline = time.monotonic() + self.settings.controller_timeout_s
        payload_ref = ray.put(payload)
        while True:
            remaining = deadline - time.monotonic()
            try:
                remote = getattr(self.controller, method).remote(decision_id, payload_ref)
                return ray.get(remote, timeout=max(remaining, 0.001))
            except ray.exceptions.ActorUnavailableError as error:
                if remaining <= 1.0:
                    return self._failed(method, decision_id, error)
                time.sleep(1.0)
            except (ray.exceptions.RayError, TimeoutError) as error:
                return self._failed(method, decision_id, error)

    @staticmethod
    def _failed(method: str, decision_id: int, error: BaseException) -> None:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.warning("controller %s for decision %d failed: %s", method, decision_id, message)
        return None

    def _gap(self, decision_id: int, kd_weight: list[float], reason: str) -> list[float]:
        self.gaps += 1
        logger.warning("decision %d skipped (%s from the controller): training keeps kd_weight %s; %d gaps so far",
                       decision_id, reason, np.round(kd_weight, 3).tolist(), self.gaps)
        return kd_weight

    def _probe(self, decision_id: int, candidates: list[list[float]],
               before: dict[str, float] | None) -> dict[str, Any]:
        """Probe this rank's share of the group, then gather every rank's results.

        `before` contains the reward-slice metrics of the current snapshot when the dev evaluation
        already scored them. Otherwise every rank scores its share of the slice and the counts add up.
        """
        rank, world_size = _rank_and_world()
        mine = list(range(rank, len(candidates), world_size))
        if before is None:
            reward_share = self.prober.data.reward_indices[rank::world_size]
            before = metrics_from_counts(all_reduce_counts(self.prober.count(self.prober.model, reward_share)))
        after = self.prober.run([candidates[i] for i in mine], seed=self.settings.seed + decision_id)
        gathered = _all_gather_objects({index: result for index, result in zip(mine, after)})
        probe_examples = self.settings.probe_steps * self.settings.batch_size
        return {
            "before": before,
            "after": _merge(gathered, len(candidates)),
            "probe_steps": self.settings.probe_steps,
            "cost_examples": probe_examples + len(self.prober.data.reward_indices),
            "teacher_forwards": probe_examples if self.settings.loss.loss_name == HIDDEN_ALIGNMENT else 0,
        }


    def get_state(self) -> dict[str, Any]:
        """Return this decision source's state for a checkpoint: timings, gaps and Group DRO's q."""
        state: dict[str, Any] = {"seconds": self.seconds, "parts": dict(self.parts), "gaps": self.gaps}
        if self.dro is not None:
            state["dro_log_q"] = self.dro.log_q.copy()
        return state

    def controller_state(self) -> dict[str, Any] | None:
        """Fetch the controller's state for a checkpoint; None (logged) when the controller is unreachable."""
        if self.controller is None:
            return None
        try:
            return ray.get(self.controller.get_state.remote(), timeout=self.settings.controller_timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as error:
            logger.warning("checkpoint without controller state: the controller is unreachable (%s)",
                           type(error).__name__)
            return None

    def set_state(self, state: dict[str, Any], controller_state: dict[str, Any] | None, *, push: bool) -> None:
        self.seconds = state.get("seconds", 0.0)
        self.parts.update(state.get("parts", {}))
        self.gaps = state.get("gaps", 0)
        if self.dro is not None and "dro_log_q" in state:
            self.dro.log_q = np.asarray(state["dro_log_q"])
        if push and self.controller is not None and controller_state is not None:
            ray.get(self.controller.set_state.remote(controller_state), timeout=self.settings.controller_timeout_s)


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


def _save_checkpoint(directory: str, method: str, model, optimizer, scheduler, step: int, kd_weight: list[float],
                     history: list[dict[str, Any]], decisions: _Decisions, final: bool, skipped_batches: int) -> None:
    """Write everything a resumed run needs. The final checkpoint also contains the Hugging Face student."""
    torch.save({
        "step": step,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "kd_weight": list(kd_weight),
        "history": history,
        "decisions": decisions.get_state(),
        "skipped_batches": skipped_batches,
    }, Path(directory, TRAIN_STATE_FILE))
    _maybe_stall_in_checkpoint(method, step)
    controller_state = decisions.controller_state()
    if controller_state is not None:
        torch.save(controller_state, Path(directory, CONTROLLER_STATE_FILE))
    Path(directory, HISTORY_FILE).write_text(json.dumps(history, allow_nan=True))
    if final:
        _student_of(model).save_pretrained(directory)


def _wait_for_committed_checkpoints() -> None:
    """Block until Ray Train has recorded every checkpoint reported so far.

    Ray Train records a report only at its controller's next poll (every 2 s by default), so a kill before
    then would resume from an older checkpoint. The next report waits for that poll anyway, so this costs
    next to nothing.
    """
    ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)


def load_train_state(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a checkpoint's training and controller state; a truncated or corrupt file fails naming the file."""
    states = []
    for name in (TRAIN_STATE_FILE, CONTROLLER_STATE_FILE):
        path = Path(directory, name)
        if name == CONTROLLER_STATE_FILE and not path.exists():
            states.append(None)
            continue
        try:
            states.append(torch.load(path, map_location="cpu", weights_only=False))
        except Exception as error:  # torch raises several types for truncated or foreign files
            raise RuntimeError(f"cannot load checkpoint file {path}: {error}") from error
    return states[0], states[1]


def _from_rank0(value: Any) -> Any:
    """Return rank 0's value on every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def _any_rank(flag: bool) -> bool:
    """Return True on every rank when `flag` is True on at least one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def _skip_batch(settings: LoopSettings, step: int, rank: int, train: EncodedSplit, indices: np.ndarray,
                loss, skipped: int) -> None:
    """Warn about a skipped batch with the ids of its non-finite examples; stop past the configured limit."""
    rows = non_finite_rows(loss).numpy()
    ids = train.ids[indices[rows]].tolist() if len(rows) else []
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    where = f"example ids {shown}" if ids else "a non-finite loss on another rank"
    logger.warning("rank %d: step %d skipped, loss is not finite (%s); %d of at most %d skipped batches",
                   rank, step, where, skipped, settings.max_skipped_batches)
    if skipped > settings.max_skipped_batches:
        raise FloatingPointError(
            f"{skipped} batches had a non-finite loss, more than distill.max_skipped_batches="
            f"{settings.max_skipped_batches}; the last at step {step} ({where}). Check the inputs and teacher logits "
            f"of those examples, or lower the learning rate"
        )


def _maybe_stall_in_checkpoint(method: str, step: int) -> None:
    """Hang once, halfway through writing the checkpoint of one step, so a test can kill the whole run there.

    Set through the environment, because the test drives `rlkd compare` as a user would; local Ray
    workers inherit the driver's environment.
    """
    spec = os.environ.get(STALL_IN_CHECKPOINT_ENV)
    if not spec:
        return
    target_method, target_step, marker = spec.split(":", 2)
    if target_method != method or int(target_step) != step or Path(marker).exists():
        return
    Path(marker).touch()
    time.sleep(600)


def _maybe_inject_failure(settings: LoopSettings, step: int, rank: int) -> None:
    if settings.inject_failure_at_step != step or rank != 0 or not settings.inject_failure_marker:
        return
    marker = Path(settings.inject_failure_marker)
    if marker.exists():
        return
    marker.touch()
    if settings.inject_failure_kind == "exit":
        os._exit(1)
    raise RuntimeError(f"injected failure at step {step}")


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
        if settings.estimator == "lookahead":
            prober = LookaheadEstimator(_unwrap(model), optimizer, probe_data, train, dev, settings.loss,
                                        settings.pad_token_id, settings.probe_steps)
        else:
            prober = Prober(_unwrap(model), optimizer, probe_data, train, dev, settings.loss, settings.pad_token_id)
    decisions = _Decisions(settings, prober)
    # When the dev evaluation covers the probes' reward slice, its forward pass also scores the slice before probing.
    reward_subset = np.zeros(0, dtype=np.int64)
    if isinstance(prober, Prober) and np.isin(prober.data.reward_indices, dev_indices).all():
        reward_subset = prober.data.reward_indices

    kd_weight = list(settings.kd_weight_init)
    history: list[dict[str, Any]] = []
    start_step = 0

    # Resume: model, optimiser, schedule, weights, history and decision state of the latest checkpoint.
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            train_state, controller_state = load_train_state(directory)
        _unwrap(model).load_state_dict(train_state["model"])
        optimizer.load_state_dict(train_state["optimizer"])
        scheduler.load_state_dict(train_state["scheduler"])
        start_step = int(train_state["step"])
        kd_weight = list(train_state["kd_weight"])
        history = list(train_state["history"])
        decisions.set_state(train_state["decisions"], controller_state, push=rank == 0)
        logger.warning("rank %d: resumed %s training from the checkpoint of step %d", rank, settings.method, start_step)

    lengths = np.asarray([len(ids) for ids in train.input_ids])
    batches = _rank_batches(lengths, settings, rank, world_size)
    for _ in range(start_step):
        next(batches)
    started = time.perf_counter()
    train_seconds = 0.0
    eval_seconds = 0.0
    checkpoint_seconds = 0.0  # up to the previous report: a report cannot time its own checkpoint
    examples_seen = 0
    skipped_batches = int(train_state.get("skipped_batches", 0)) if checkpoint is not None else 0
    exporter = MetricsExporter(loop_config.get("run_name"), settings.method) if rank == 0 else None

    # One bar for the run, drawn by the driver; the other ranks take the same steps.
    progress_bar = ray_tqdm(total=steps, desc=f"{settings.method} training", unit="step") if rank == 0 else None
    if progress_bar is not None and start_step:
        progress_bar.update(start_step)

    model.train()
    for step in range(start_step + 1, steps + 1):
        _maybe_inject_failure(settings, step, rank)
        step_started = time.perf_counter()
        indices = next(batches)
        batch = collate(train, indices, settings.pad_token_id)
        loss = compute_loss(model, batch, torch.tensor(kd_weight), settings.loss)
        # Every rank learns whether any rank's loss is non-finite, so all skip the same steps and DDP stays in step.
        if _any_rank(not bool(torch.isfinite(loss.total))):
            skipped_batches += 1
            _skip_batch(settings, step, rank, train, indices, loss, skipped_batches)
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        else:
            apply_gradients(model, optimizer, loss, scheduler)
        step_seconds = time.perf_counter() - step_started
        train_seconds += step_seconds
        examples_seen += len(batch["labels"])
        if exporter is not None:
            exporter.step(step_seconds, len(batch["labels"]) * world_size)
        if progress_bar is not None:
            progress_bar.update(1)

        if step % settings.decision_interval != 0 and step != steps:
            continue

        # Dev metrics at a decision point, identical on every rank after the all-reduce.
        eval_started = time.perf_counter()
        counts, reward_counts = count_predictions_with_subset(
            model, dev, rank_dev_indices, reward_subset, pad_token_id=settings.pad_token_id, softmax_temperature=settings.loss.softmax_temperature,
            kd_loss_name=metric_loss_name,
        )
        metrics = metrics_from_counts(all_reduce_counts(counts))
        reward_before = metrics_from_counts(all_reduce_counts(reward_counts)) if len(reward_subset) else None
        eval_seconds += time.perf_counter() - eval_started
        record = {"step": step, "kd_weight": list(kd_weight), **metrics}

        if step != steps:
            kd_weight = decisions.decide(step, metrics, step / steps, kd_weight, reward_before)
        history.append(record)
        if exporter is not None:
            exporter.decision_point(metrics, kd_weight, float(loss.total.item()), skipped_batches, decisions.gaps)

        report = {
            "step": step,
            "total_steps": steps,
            "train_loss": float(loss.total.item()),
            "samples_per_s": examples_seen * world_size / max(train_seconds, 1e-9),
            "controller_s": decisions.seconds,
            **{f"controller_{part}": seconds for part, seconds in decisions.parts.items()},
            # The rest of the controller's time: collectives in which ranks agree on candidates and weights.
            "controller_sync_s": max(0.0, decisions.seconds - sum(decisions.parts.values())),
            "train_s": train_seconds,
            "eval_s": eval_seconds,
            "checkpoint_s": checkpoint_seconds,
            "controller_gaps": decisions.gaps,
            "skipped_batches": skipped_batches,
            "wall_s": time.perf_counter() - started,
            **{f"kd_weight/{lang}": value for lang, value in zip(LANGS, record["kd_weight"])},
            **metrics,
        }
        # Every report carries a checkpoint written by rank 0, and the last one also contains the student.
        final = step == steps
        if final and progress_bar is not None:
            progress_bar.close()
        checkpoint_started = time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = None
            if rank == 0:
                _wait_for_committed_checkpoints()
                _save_checkpoint(directory, settings.method, model, optimizer, scheduler, step, kd_weight, history,
                                 decisions, final, skipped_batches)
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(report, checkpoint=checkpoint)
        checkpoint_seconds += time.perf_counter() - checkpoint_started
