"""Shared set-up of the KD benchmarks: the default config on the real corpus with the cached teacher."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform as host
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import torch
from transformers import get_linear_schedule_with_warmup

from rlkd.compare import (ComparePaths, PreparedRun, _method_settings, default_cache_dir, new_run_id, prepare_run,
                          run_compare)
from rlkd.config import RunConfig, load_config
from rlkd.models import build_student
from rlkd.train.encoding import EncodedSplit, collate
from rlkd.train.loop import WARMUP_SHARE, LoopSettings, _rank_batches
from rlkd.train.step import apply_gradients, build_optimizer, compute_loss

# `make bench-quick` sends its short runs to a folder of their own, so they never replace full results.
RESULTS_DIR = Path(os.environ.get("RLKD_BENCH_RESULTS", Path(__file__).parent / "results"))
OUT_DIR = Path("outputs") / "bench"


@dataclass
class KDBench:
    config: RunConfig
    prepared: PreparedRun
    settings: LoopSettings  # uniform KD, `steps` steps per worker, one decision point at the end
    run_id: str


def prepare_kd(data_dir: Path, steps: int, cache_dir: Path | None, threads: int, name: str,
               teacher_on_gpu: bool = False) -> KDBench:
    """Prepare data, teacher and the `kd` loop settings.

    The teacher keeps the default scaling, so the one `rlkd compare` cached fits, unless it trains
    on one GPU. The caller starts Ray first.
    """
    overrides = ["methods=kd", f"student.max_steps={steps}", f"distill.decision_interval={steps}",
                 f"scaling.torch_threads={threads}"]
    if teacher_on_gpu:
        overrides += ["scaling.num_workers=1", "scaling.use_gpu=true"]
    config = load_config(overrides=overrides)
    out_dir = (OUT_DIR / name).resolve()
    run_id = new_run_id()
    prepared = prepare_run(config, ComparePaths(data_dir.resolve(), out_dir, (cache_dir or default_cache_dir()).resolve()),
                           run_id, out_dir / "ray")
    settings = _method_settings(config, "kd", config.seed, list(config.distill.kd_weight_init), prepared.student_kwargs,
                                prepared.student_tokenizer.pad_token_id, None, None)
    return KDBench(config, prepared, settings, run_id)


def add_compare_arguments(parser: argparse.ArgumentParser, run_help: str) -> None:
    """Add the options of a benchmark that runs `rlkd compare` or reads a finished run (see `compare_or_read`)."""
    parser.add_argument("--data", type=Path, help="Corpus folder (needed unless --run is given).")
    parser.add_argument("--run", type=Path, help=run_help)
    parser.add_argument("--smoke-test", action="store_true", help="The smoke profile: checks the script, not the figures.")
    parser.add_argument("--cache-dir", type=Path, default=None, help="rlkd cache (default: ~/.cache/rlkd).")


def compare_or_read(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str,
                    overrides: list[str]) -> Path:
    """Return the checked --run folder; without one, run `rlkd compare` with `overrides` into outputs/bench/<name>/<run id>."""
    if args.run is not None:
        return check_run_dir(args.run)
    if args.data is None:
        parser.error("give --data to train, or --run to read a finished compare run")
    config = load_config(overrides=overrides, smoke_test=args.smoke_test)
    paths = ComparePaths(args.data.resolve(), (OUT_DIR / name / "{run_id}").resolve(),
                         (args.cache_dir or default_cache_dir()).resolve())
    return run_compare(config, paths)


def check_run_dir(run_dir: Path) -> Path:
    """Return `run_dir` if it is a finished `rlkd compare` run; otherwise stop with a message naming the folder."""
    missing = [name for name in ("run.json", "config.json", "results.csv") if not (run_dir / name).is_file()]
    if missing:
        raise SystemExit(f"--run {run_dir}: not a finished rlkd compare run (missing {', '.join(missing)}); "
                         f"pass the folder that holds its report.md")
    return run_dir


def write_results(path: Path, summary: dict) -> None:
    """Write a benchmark's summary as JSON under bench/results and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


def setup_logging() -> None:
    """Show rlkd's progress lines (teacher reuse, each student's test scores) as `rlkd compare` does."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def machine(threads: int) -> dict:
    return {"cores": os.cpu_count(), "torch_threads": threads, "cpu": host.processor() or host.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "ray": ray.__version__,
            # Ray starts workers at this niceness: 15, unless the environment sets RAY_worker_niceness.
            "ray_worker_niceness": int(os.environ.get("RAY_worker_niceness", "15"))}


def plain_loop(settings: LoopSettings, train: EncodedSplit, steps: int, threads: int,
               teacher: torch.nn.Module | None = None) -> float:
    """Train `steps` KD steps in this process, with no Ray; return student samples per second over the steps.

    The batches, loss and optimiser are rlkd's own. With `teacher`, each step runs the teacher on the
    batch (eval mode, no gradients) and distils from those logits instead of the cached ones. The
    student must then share the teacher's tokenizer, as it does by default.
    """
    torch.set_num_threads(threads)
    model = build_student(settings.student_config, settings.seed)
    optimizer = build_optimizer(model, settings.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_SHARE * steps), steps)
    lengths = np.asarray([len(ids) for ids in train.input_ids])
    batches = _rank_batches(lengths, settings, 0, 1)
    kd_weight = torch.tensor(settings.kd_weight_init)
    if teacher is not None:
        teacher.eval()

    model.train()
    seconds, samples = 0.0, 0
    for _ in range(steps):
        started = time.perf_counter()
        batch = collate(train, next(batches), settings.pad_token_id)
        if teacher is not None:
            with torch.inference_mode():
                logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            batch["teacher_logits"] = logits.float().clone()
        loss = compute_loss(model, batch, kd_weight, settings.loss)
        apply_gradients(model, optimizer, loss, scheduler)
        seconds += time.perf_counter() - started
        samples += len(batch["labels"])
    return samples / seconds
