"""Student against teacher: parameters, checkpoint size, CPU inference throughput and test macro-F1 retained.

Reads a finished compare run (the one bench/quality.py leaves, by default the run named in
bench/results/quality.json): its teacher from the rlkd cache, its students of one method, and their
test scores from results.csv. Throughput is tweets per second of a forward pass (eval mode,
`torch.inference_mode`, every core as torch threads) over the test tweets in file order, with
dynamic padding, at batch 1 and batch 64. Targets: the student runs at least 5 times as many
tweets per second as the teacher and keeps at least 95% of its test macro-F1. Writes
bench/results/student_teacher.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/student_teacher.py --data ../shared/data/sentimix [--run outputs/bench/quality/<run id>] [--method rl]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch

from common import RESULTS_DIR, check_run_dir, machine, setup_logging, write_results
from rlkd.compare import ComparePaths, default_cache_dir, ensure_ray, prepare_teacher_stage, read_run_state
from rlkd.models import count_parameters, load_classifier
from rlkd.train.encoding import EncodedSplit, batch_indices, collate

RESULTS = RESULTS_DIR / "student_teacher.json"
WEIGHT_FILES = ("*.safetensors", "*.bin")


def checkpoint_mib(model_dir: Path) -> float:
    """Size of the weight files of a Hugging Face model folder, in MiB."""
    return sum(path.stat().st_size for pattern in WEIGHT_FILES for path in model_dir.glob(pattern)) / 2**20


@torch.inference_mode()
def throughput(model: torch.nn.Module, split: EncodedSplit, pad_token_id: int, batch_size: int,
               examples: int, warmup_batches: int = 5) -> float:
    """Tweets per second of forward passes over the first `examples` tweets, in batches of `batch_size`."""
    model.eval()
    batches = [collate(split, np.asarray(positions), pad_token_id)
               for positions in batch_indices(min(examples, len(split)), batch_size)]
    for batch in batches[:warmup_batches]:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    started = time.perf_counter()
    for batch in batches:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return sum(len(batch["labels"]) for batch in batches) / (time.perf_counter() - started)


def model_dirs(run_dir: Path, method: str) -> list[Path]:
    """Find the saved students of `method`, one folder per seed, each with a config.json."""
    found = sorted(path.parent for path in (run_dir / "students").glob(f"{method}/**/config.json"))
    if not found:
        raise SystemExit(f"no saved {method} student in {run_dir / 'students'}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Corpus folder that the run read.")
    parser.add_argument("--run", type=Path, help="Finished compare run (default: the run of results/quality.json).")
    parser.add_argument("--method", default="rl", help="Students of this method (default rl).")
    parser.add_argument("--examples", type=int, default=640, help="Test tweets per throughput measurement.")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")
    args = parser.parse_args()
    setup_logging()

    run_dir = args.run
    if run_dir is None:
        quality = RESULTS_DIR / "quality.json"
        if not quality.is_file():
            raise SystemExit(f"give --run, or run bench/quality.py first (no {quality})")
        run_dir = Path(json.loads(quality.read_text())["run"])
    check_run_dir(run_dir)
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)

    # The run's own data and teacher: the teacher comes from the cache that the run filled.
    run_id, config = read_run_state(run_dir)
    ensure_ray()
    stage = prepare_teacher_stage(config, ComparePaths(args.data.resolve(), run_dir / "bench",
                                                       (args.cache_dir or default_cache_dir()).resolve()),
                                  run_id, str((run_dir / "bench" / "ray").resolve()))
    test = stage.encoded["test"]
    pad_token_id = stage.tokenizer.pad_token_id
    teacher_dir = Path(stage.teacher.model_dir)
    student_dir = model_dirs(run_dir, args.method)[0]
    models = {"teacher": (teacher_dir, load_classifier(str(teacher_dir))),
              args.method: (student_dir, load_classifier(str(student_dir)))}
    if config.student.tokenizer != "teacher":
        raise SystemExit("bench/student_teacher.py times both models on the teacher's tokens; this run's student "
                         "has a corpus tokenizer")

    # Size and speed of each model; the two alternate per batch size, so both see the same machine.
    rows = {}
    for name, (directory, model) in models.items():
        rows[name] = {"parameters": count_parameters(model), "checkpoint_mib": round(checkpoint_mib(directory), 1),
                      "model_dir": str(directory)}
    for batch_size in (1, 64):
        for name, (_, model) in models.items():
            rows[name][f"tweets_per_s_batch{batch_size}"] = round(
                throughput(model, test, pad_token_id, batch_size, args.examples), 1)

    # Test macro-F1 from the run's results: the teacher's one run, the students' mean over seeds.
    results = pd.read_csv(run_dir / "results.csv")
    overall = results[results["lang"] == "all"].groupby("method")["macro_f1"].mean()
    for name in models:
        rows[name]["test_macro_f1"] = round(float(overall[name]), 4)

    student, teacher = rows[args.method], rows["teacher"]
    speedups = {f"batch{size}": round(student[f"tweets_per_s_batch{size}"] / teacher[f"tweets_per_s_batch{size}"], 2)
                for size in (1, 64)}
    retained = student["test_macro_f1"] / teacher["test_macro_f1"]
    summary = {
        "compared": f"{args.method} student ({config.student.num_layers}x{config.student.hidden_size}) against the "
                    f"teacher of compare run {run_id}; {args.examples} test tweets per throughput measurement",
        "machine": machine(threads),
        "run": str(run_dir.resolve()),
        "models": rows,
        "parameter_ratio": round(teacher["parameters"] / student["parameters"], 2),
        "checkpoint_ratio": round(teacher["checkpoint_mib"] / student["checkpoint_mib"], 2),
        "speedup": speedups,
        "macro_f1_retained": round(retained, 4),
        "targets": "speedup >= 5 at batch 1 and 64; macro_f1_retained >= 0.95",
        "target_met": {"speedup": bool(min(speedups.values()) >= 5), "macro_f1_retained": bool(retained >= 0.95)},
    }
    write_results(RESULTS, summary)
    print(f"student vs teacher: {student['parameters'] / 1e6:.1f}M vs {teacher['parameters'] / 1e6:.1f}M parameters, "
          f"{student['checkpoint_mib']:.0f} vs {teacher['checkpoint_mib']:.0f} MiB; throughput "
          f"{speedups['batch1']:.1f}x at batch 1, {speedups['batch64']:.1f}x at batch 64 (target 5x); "
          f"macro-F1 retained {100 * retained:.1f}% (target 95%)")
    ray.shutdown()


if __name__ == "__main__":
    main()
