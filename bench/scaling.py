"""Scaling: rlkd's KD throughput with one Ray Train worker against two, on the same cores (and a GPU, if asked).

Both CPU set-ups use every core: one worker with all of them as torch threads, or two workers with
half each. Each worker takes `--steps` KD steps of the default student with uniform KD on the real
corpus (cached teacher logits), so two workers train on twice the samples. The script prints the
machine, student samples per second over the training steps of all workers, and the ratio of two
workers to one, then writes bench/results/scaling.json (scaling_gpu.json with --gpu).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scaling.py --data ../shared/data/sentimix [--steps 200] [--repeats 3]

With --gpu it compares one CPU worker with one GPU worker instead; bench/gpu.sh runs that on a GPU
machine.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import ray

from common import OUT_DIR, RESULTS_DIR, machine, prepare_kd, setup_logging
from rlkd.compare import check_cluster_fits, ensure_ray
from rlkd.config import ScalingConfig
from rlkd.train.runner import fit


def setups(cores: int, gpu: bool) -> dict[str, ScalingConfig]:
    one_cpu_worker = ScalingConfig(num_workers=1, cpus_per_worker=cores, torch_threads=cores)
    if gpu:
        return {"1 CPU worker": one_cpu_worker,
                "1 GPU worker": ScalingConfig(num_workers=1, use_gpu=True, cpus_per_worker=cores, torch_threads=cores)}
    half = max(1, cores // 2)
    return {"1 CPU worker": one_cpu_worker,
            "2 CPU workers": ScalingConfig(num_workers=2, cpus_per_worker=half, torch_threads=half)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Corpus folder.")
    parser.add_argument("--steps", type=int, default=200, help="KD steps per worker (default 200).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each set-up, alternating (default 3).")
    parser.add_argument("--gpu", action="store_true", help="Compare one CPU worker with one GPU worker.")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")
    args = parser.parse_args()
    setup_logging()

    cores = os.cpu_count() or 1
    ensure_ray()
    configs = setups(cores, args.gpu)
    for scaling in configs.values():
        check_cluster_fits(scaling)
    bench = prepare_kd(args.data, args.steps, args.cache_dir, cores, "scaling", teacher_on_gpu=args.gpu)
    out_dir = (OUT_DIR / "scaling").resolve()

    # The set-ups alternate, so a slow spell of the machine hits all of them.
    runs: dict[str, list[float]] = {name: [] for name in configs}
    for repeat in range(args.repeats):
        for name, scaling in configs.items():
            settings = replace(bench.settings, torch_threads=scaling.threads_per_worker)
            result = fit(settings, bench.prepared.splits_ref, scaling, storage_path=out_dir / "ray",
                         run_name=f"{bench.run_id}-{name.replace(' ', '-')}-{repeat}", output_dir=out_dir / "student")
            runs[name].append(result.metrics["samples_per_s"])

    medians = {name: float(np.median(values)) for name, values in runs.items()}
    baseline, other = list(configs)
    summary = {
        "compared": f"kd, {args.steps} steps of batch {bench.config.student.batch_size} per worker, student "
                    f"{bench.config.student.num_layers}x{bench.config.student.hidden_size}: {other} vs {baseline}",
        "machine": machine(cores),
        "repeats": args.repeats,
        "samples_per_s": {name: round(value, 1) for name, value in medians.items()},
        "runs": {name: [round(value, 1) for value in values] for name, values in runs.items()},
        "ratio": round(medians[other] / medians[baseline], 3),
    }
    path = RESULTS_DIR / ("scaling_gpu.json" if args.gpu else "scaling.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"scaling: {other} {medians[other]:.0f} samples/s vs {baseline} {medians[baseline]:.0f}: "
          f"ratio {medians[other] / medians[baseline]:.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
