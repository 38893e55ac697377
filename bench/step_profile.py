"""Profile of a student KD step and of one rank's share of a probe decision, part by part.

A KD step is cut into collate, forward, backward, gradient clipping and optimiser step. It runs
once with the optimiser rlkd builds (AdamW, fused where the device has a fused kernel), and once
with torch's default AdamW, which updates one tensor at a time on CPU. A probe decision is cut into the snapshot copies,
the probe steps and the reward-slice scoring of each candidate (the rest is mostly snapshot copies), for the candidates one rank probes
at default settings (group size / workers). Everything runs in this process, on one torch thread
by default, as each of the two default workers does. Writes bench/results/step_profile.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/step_profile.py --data ../shared/data/sentimix [--steps 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import ray
import torch

import rlkd.train.probes as probes
from common import RESULTS_DIR, machine, prepare_kd, setup_logging, write_results
from rlkd.compare import ensure_ray
from rlkd.models import build_student
from rlkd.train.encoding import collate
from rlkd.train.loop import _rank_batches
from rlkd.train.probes import Prober, choose_probe_data
from rlkd.train.step import MAX_GRAD_NORM, WEIGHT_DECAY, build_optimizer, compute_loss, training_step

RESULTS = RESULTS_DIR / "step_profile.json"
WARMUP_STEPS = 10


def profile_steps(settings, train, optimizer_kind: str, steps: int) -> dict[str, float]:
    """Return milliseconds per step of each part, averaged over `steps` steps after a warm-up."""
    model = build_student(settings.student_config, settings.seed)
    if optimizer_kind == "rlkd":
        optimizer = build_optimizer(model, settings.learning_rate)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)
    lengths = np.asarray([len(ids) for ids in train.input_ids])
    batches = _rank_batches(lengths, settings, 0, 2)  # rank 0 of the default 2 workers
    kd_weight = torch.tensor(settings.kd_weight_init)

    totals = dict.fromkeys(("collate", "forward", "backward", "clip", "optimizer"), 0.0)
    model.train()
    for step in range(WARMUP_STEPS + steps):
        marks = [time.perf_counter()]
        batch = collate(train, next(batches), settings.pad_token_id)
        marks.append(time.perf_counter())
        loss = compute_loss(model, batch, kd_weight, settings.loss)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if step >= WARMUP_STEPS:
            for part, started, ended in zip(totals, marks, marks[1:]):
                totals[part] += ended - started
    parts = {part: round(1000 * seconds / steps, 1) for part, seconds in totals.items()}
    parts["total"] = round(sum(parts.values()), 1)
    return parts


def profile_decision(settings, train, dev, config) -> dict[str, float]:
    """Return seconds of each part of one rank's probes at one decision, at the default controller settings."""
    model = build_student(settings.student_config, settings.seed)
    optimizer = build_optimizer(model, settings.learning_rate)
    data = choose_probe_data(train, dev, probe_steps=config.controller.probe_steps,
                             batch_size=settings.batch_size, reward_examples=config.controller.reward_examples,
                             seed=settings.seed)
    kd_weight = torch.ones(3)
    # A few real steps first, so the snapshot has Adam moments to copy.
    for indices in data.probe_batches[:3]:
        training_step(model, optimizer, collate(train, indices, settings.pad_token_id), kd_weight, settings.loss)
    prober = Prober(model, optimizer, data, train, dev, settings.loss, settings.pad_token_id)

    # Wrap the probe steps and the scoring where probes.py looks them up; restore them afterwards.
    totals = dict.fromkeys(("probe_steps", "scoring"), 0.0)
    originals = (probes.training_step, prober.score)

    def timed(part, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[part] += time.perf_counter() - started
        return wrapper

    probes.training_step = timed("probe_steps", training_step)
    prober.score = timed("scoring", prober.score)
    candidates = config.controller.group_size // config.scaling.num_workers
    started = time.perf_counter()
    try:
        prober.run([[1.0, 1.0, 1.0]] * candidates, seed=settings.seed)
    finally:
        probes.training_step, prober.score = originals
    total = time.perf_counter() - started
    result = {part: round(seconds, 2) for part, seconds in totals.items()}
    result["snapshot_copies_and_rest"] = round(total - sum(totals.values()), 2)
    result["total"] = round(total, 2)
    result["candidates"] = candidates
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Corpus folder.")
    parser.add_argument("--steps", type=int, default=60, help="Profiled KD steps per optimiser (default 60).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as each default worker).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")
    args = parser.parse_args()
    setup_logging()

    ensure_ray()
    bench = prepare_kd(args.data, args.steps, args.cache_dir, args.threads, "step_profile")
    config, settings = bench.config, bench.settings
    train, dev = bench.prepared.distill_splits["train"], bench.prepared.distill_splits["dev"]
    torch.set_num_threads(args.threads)

    step_rlkd = profile_steps(settings, train, "rlkd", args.steps)
    step_default = profile_steps(settings, train, "per-tensor AdamW", args.steps)
    decision = profile_decision(settings, train, dev, config)
    summary = {
        "compared": f"ms per KD step of the default student (batch {settings.batch_size}), rlkd's fused AdamW "
                    f"against torch's default; seconds of one rank's probes at one decision",
        "machine": machine(args.threads),
        "step_ms_rlkd_optimizer": step_rlkd,
        "step_ms_default_adamw": step_default,
        "probe_decision_s": decision,
    }
    write_results(RESULTS, summary)
    print(f"KD step: {step_rlkd['total']:.0f} ms with rlkd's optimiser ({step_rlkd['optimizer']:.0f} ms in it), "
          f"{step_default['total']:.0f} ms with torch's default AdamW ({step_default['optimizer']:.0f} ms); "
          f"one rank's probes at a decision: {decision['total']:.1f} s ({decision['probe_steps']:.1f} s in steps, "
          f"{decision['scoring']:.1f} s scoring)")
    ray.shutdown()


if __name__ == "__main__":
    main()
