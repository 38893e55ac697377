"""Platform overhead: rlkd's KD steps on Ray Train with one worker against the same steps in a plain PyTorch loop.

Both sides train the default student with uniform KD on the real corpus, with the cached teacher
logits, the same batches (rlkd's seeded length-bucketed order), the same loss and optimiser code and
the same torch threads. The plain loop is one process with no Ray. The script prints the machine,
both throughputs in student samples per second, and their ratio (target: at least 0.90), then writes
bench/results/overhead.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/overhead.py --data ../shared/data/sentimix [--steps 200] [--repeats 3]

Two ratios are reported. `train steps` counts the time of the training steps alone, which is what
Ray Train adds per step. `end to end` also counts rlkd's decision points (one dev evaluation and
one checkpoint, at the last step) against a plain loop that has neither. Each side runs `--repeats`
times, alternating, and the ratios compare medians.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import ray

from common import OUT_DIR, RESULTS_DIR, machine, plain_loop, prepare_kd, setup_logging, write_results
from rlkd.compare import check_cluster_fits, ensure_ray
from rlkd.config import ScalingConfig
from rlkd.train.runner import fit

RESULTS = RESULTS_DIR / "overhead.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Corpus folder.")
    parser.add_argument("--steps", type=int, default=200, help="KD steps on each side (default 200).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Runs of each side, alternating; the ratio uses the medians (default 3).")
    args = parser.parse_args()
    setup_logging()

    # One worker that owns every core, and a plain loop with as many torch threads.
    threads = os.cpu_count() or 1
    scaling = ScalingConfig(num_workers=1, cpus_per_worker=threads, torch_threads=threads)
    ensure_ray()
    check_cluster_fits(scaling)
    bench = prepare_kd(args.data, args.steps, args.cache_dir, threads, "overhead")
    config, prepared, settings, run_id = bench.config, bench.prepared, bench.settings, bench.run_id
    out_dir = (OUT_DIR / "overhead").resolve()
    train = prepared.distill_splits["train"]

    # The two sides alternate, so a slow spell of the machine hits both; single runs vary by 10% here.
    rlkd_train_runs, rlkd_end_to_end_runs, plain_runs = [], [], []
    for repeat in range(args.repeats):
        result = fit(settings, prepared.splits_ref, scaling, storage_path=out_dir.resolve() / "ray",
                     run_name=f"{run_id}-overhead-{repeat}", output_dir=out_dir / "student")
        rlkd_train_runs.append(result.metrics["samples_per_s"])
        rlkd_end_to_end_runs.append(args.steps * config.student.batch_size / result.metrics["wall_s"])
        plain_runs.append(plain_loop(settings, train, args.steps, threads))
    rlkd_train = float(np.median(rlkd_train_runs))
    rlkd_end_to_end = float(np.median(rlkd_end_to_end_runs))
    plain = float(np.median(plain_runs))

    summary = {
        "compared": f"kd, {args.steps} steps of batch {config.student.batch_size}, student "
                    f"{config.student.num_layers}x{config.student.hidden_size}, 1 Ray Train worker vs 1 plain process",
        "machine": machine(threads),
        "repeats": args.repeats,
        "plain_samples_per_s": round(plain, 1),
        "rlkd_train_samples_per_s": round(rlkd_train, 1),
        "rlkd_end_to_end_samples_per_s": round(rlkd_end_to_end, 1),
        "ratio_train_steps": round(rlkd_train / plain, 3),
        "ratio_end_to_end": round(rlkd_end_to_end / plain, 3),
        "runs": {"plain": [round(value, 1) for value in plain_runs],
                 "rlkd_train": [round(value, 1) for value in rlkd_train_runs],
                 "rlkd_end_to_end": [round(value, 1) for value in rlkd_end_to_end_runs]},
        "target_ratio": 0.90,
    }
    write_results(RESULTS, summary)
    print(f"platform overhead: rlkd {rlkd_train:.0f} samples/s on training steps ({rlkd_end_to_end:.0f} end to end) "
          f"vs plain PyTorch {plain:.0f}: ratio {rlkd_train / plain:.3f} ({rlkd_end_to_end / plain:.3f} end to end), "
          f"target >= 0.90")
    ray.shutdown()


if __name__ == "__main__":
    main()
