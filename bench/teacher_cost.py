"""Teacher cost: KD steps that read cached teacher logits against KD steps that run the teacher online.

rlkd runs the fine-tuned teacher once over every split, stores its logits in Parquet beside the
teacher, and distils from those arrays. This script measures what that saves. It runs the same KD
steps (default student, uniform KD, rlkd's batches, loss and optimiser) in one plain process twice:
with the cached logits, and with a teacher forward pass (eval mode, no gradients) in every step. It also
times the one-time pass that fills the cache over the train split, and reports after how many
steps the cache has paid for itself. Writes bench/results/teacher_cost.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/teacher_cost.py --data ../shared/data/sentimix [--steps 100] [--repeats 3]

Both sides run in a plain loop rather than on Ray Train, so the comparison isolates the teacher's
cost. bench/overhead.py measures how close rlkd's Ray Train worker comes to the plain loop's speed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import ray

from common import RESULTS_DIR, machine, plain_loop, prepare_kd, setup_logging, write_results
from rlkd.compare import ensure_ray
from rlkd.models import load_classifier
from rlkd.teacher import compute_logits

RESULTS = RESULTS_DIR / "teacher_cost.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Corpus folder.")
    parser.add_argument("--steps", type=int, default=100, help="KD steps on each side (default 100).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Runs of each side, alternating; the ratio uses the medians (default 3).")
    parser.add_argument("--cache-examples", type=int, default=None,
                        help="Time the cache-filling pass on this many train tweets and scale up (default: all).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")
    args = parser.parse_args()
    setup_logging()

    threads = os.cpu_count() or 1
    ensure_ray()
    bench = prepare_kd(args.data, args.steps, args.cache_dir, threads, "teacher_cost")
    config, prepared, settings = bench.config, bench.prepared, bench.settings
    if config.student.tokenizer != "teacher":
        raise SystemExit("bench/teacher_cost.py needs student.tokenizer=teacher: the online teacher reads the "
                         "student's batches")
    train = prepared.distill_splits["train"]
    teacher = load_classifier(str(prepared.teacher.model_dir))

    # The sides alternate, so a slow spell of the machine hits both.
    cached_runs, online_runs = [], []
    for _ in range(args.repeats):
        cached_runs.append(plain_loop(settings, train, args.steps, threads))
        online_runs.append(plain_loop(settings, train, args.steps, threads, teacher=teacher))
    cached = float(np.median(cached_runs))
    online = float(np.median(online_runs))

    # The one-time pass that fills the cache, over the train split (dev and test are scored anyway).
    sample = train
    if args.cache_examples and args.cache_examples < len(train):
        sample = train.subset(np.random.default_rng(0).permutation(len(train))[: args.cache_examples])
    started = time.perf_counter()
    compute_logits(teacher, sample, settings.pad_token_id, description="teacher logits (train)")
    cache_seconds = (time.perf_counter() - started) * len(train) / len(sample)

    # Per step, the cache saves the difference of the two step times; it costs cache_seconds once.
    batch = config.student.batch_size
    saved_per_step = batch / online - batch / cached
    break_even_steps = cache_seconds / saved_per_step if saved_per_step > 0 else float("inf")
    steps_per_epoch = len(train) // batch
    summary = {
        "compared": f"kd, {args.steps} steps of batch {batch}, student {config.student.num_layers}x"
                    f"{config.student.hidden_size}, cached teacher logits vs teacher "
                    f"({prepared.teacher.num_parameters:,} parameters) run online, one plain process",
        "machine": machine(threads),
        "repeats": args.repeats,
        "cached_samples_per_s": round(cached, 1),
        "online_samples_per_s": round(online, 1),
        "ratio_cached_to_online": round(cached / online, 2),
        "cache_fill_seconds_train": round(cache_seconds, 1),
        "cache_fill_measured_on": len(sample),
        "train_tweets": len(train),
        "break_even_steps": round(break_even_steps, 1),
        "break_even_epochs": round(break_even_steps / steps_per_epoch, 3),
        "runs": {"cached": [round(value, 1) for value in cached_runs],
                 "online": [round(value, 1) for value in online_runs]},
    }
    write_results(RESULTS, summary)
    print(f"teacher cost: cached logits {cached:.0f} samples/s vs teacher online {online:.0f}: "
          f"{cached / online:.2f}x; filling the cache takes {cache_seconds:.0f} s, repaid after "
          f"{break_even_steps:.0f} steps ({break_even_steps / steps_per_epoch:.2f} epochs of one process)")
    ray.shutdown()


if __name__ == "__main__":
    main()
