"""The stages of a compare run as runs of their own: the teacher alone, and scoring saved students again.

`jobs/teacher.py` and `jobs/evaluate.py` call these through `rlkd teacher` and `rlkd evaluate`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import ray
import torch

from rlkd.compare import (
    ComparePaths,
    _check_splits,
    _test_scores,
    check_cluster_fits,
    ensure_ray,
    expand_run_id,
    new_run_id,
    prepare_teacher_stage,
    storage_location,
)
from rlkd.config import RunConfig, load_config
from rlkd.constants import LANGS
from rlkd.data import DataError, prepare_splits
from rlkd.evaluate import MethodSummary, render_report, score_logits, write_report, write_results_csv
from rlkd.models import load_tokenizer
from rlkd.train.encoding import encode_split

logger = logging.getLogger(__name__)

STUDENTS_DIR = "students"
MODEL_CONFIG = "config.json"


def run_teacher(config: RunConfig, paths: ComparePaths) -> Path:
    """Fine-tune the teacher (or reuse the cached one), score it on the test split, write results.csv and report.md."""
    run_id = new_run_id()
    ensure_ray()
    check_cluster_fits(config.scaling)  # before the output folder exists
    out_dir = expand_run_id(paths.out_dir, run_id)
    paths = ComparePaths(paths.data_dir, out_dir, paths.cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    stage = prepare_teacher_stage(config, paths, run_id, storage_location(config, out_dir))
    teacher = stage.teacher
    test = stage.encoded["test"].with_teacher_logits(teacher.logits_by_id)
    summary = MethodSummary("teacher", score_logits(test, test.teacher_logits), teacher.num_parameters, stage.seconds,
                            notes=f"{'from cache' if teacher.cached else 'fine-tuned in this run'}; {teacher.model_dir}",
                            seed=config.seed)

    _write_outputs([summary], test, out_dir, config, "rlkd teacher report", {
        "run id": run_id, "data": str(paths.data_dir), "teacher": str(teacher.model_dir),
        "torch / ray": f"{torch.__version__} / {ray.__version__}",
    })
    logger.info("teacher run %s done: test macro-F1 %.3f, model in %s", run_id, summary.scores["all"]["macro_f1"],
                teacher.model_dir)
    return out_dir


def find_students(run_dir: Path, base_seed: int) -> list[tuple[str, int, Path]]:
    """List (method, seed, folder) of every student a compare run saved, in a stable order."""
    root = run_dir / STUDENTS_DIR
    if not root.is_dir():
        raise DataError(f"no {STUDENTS_DIR}/ folder in {run_dir}: pass the --out folder of an `rlkd compare` run")
    found = []
    for method_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        if (method_dir / MODEL_CONFIG).is_file():
            found.append((method_dir.name, base_seed, method_dir))
        for seed_dir in sorted(method_dir.glob("seed*")):
            if (seed_dir / MODEL_CONFIG).is_file() and seed_dir.name[4:].isdigit():
                found.append((method_dir.name, int(seed_dir.name[4:]), seed_dir))
    if not found:
        raise DataError(f"no saved student under {root} (each needs its {MODEL_CONFIG})")
    return found


def run_evaluate(run_dir: Path, data_dir: Path, out_dir: Path, cache_dir: Path) -> Path:
    """Score every student of a compare run on the test split of `data_dir`; write results.csv and report.md.

    The data is read with the run's own data settings (tag maps, length, sampling), so each student
    gets test text prepared the way its training text was.
    """
    config = _run_config(run_dir)
    students = find_students(run_dir, config.seed)
    data = config.data
    splits = prepare_splits(data_dir, cache_dir / "data", dev_fraction=data.dev_fraction, seed=data.seed,
                            mode=data.mode, max_tweets_per_file=data.max_tweets_per_file, tag_maps=data.tag_maps)
    _check_splits(splits, data_dir)

    summaries = []
    test = None
    for method, seed, folder in students:
        started = time.perf_counter()
        tokenizer = load_tokenizer(str(folder))
        test = encode_split(splits["test"], tokenizer, data.max_length)
        scores, num_parameters = _test_scores(folder, test, tokenizer.pad_token_id)
        history_path = folder / "history.json"
        history = json.loads(history_path.read_text()) if history_path.is_file() else []
        summaries.append(MethodSummary(method, scores, num_parameters, time.perf_counter() - started, history,
                                       notes=str(folder), seed=seed))
        logger.info("%s (seed %d): test macro-F1 %.3f", method, seed, scores["all"]["macro_f1"])

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_outputs(summaries, test, out_dir, config, "rlkd evaluate report", {
        "students of": str(run_dir), "data": str(data_dir),
        "wall time": "scoring only; training times are in the run's own report",
    })
    return out_dir


def _run_config(run_dir: Path) -> RunConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise DataError(f"no config.json in {run_dir}: pass the --out folder of a finished `rlkd compare` run")
    return load_config(path)


def _write_outputs(summaries: list[MethodSummary], test, out_dir: Path, config: RunConfig, title: str,
                   settings: dict) -> None:
    write_results_csv(summaries, out_dir / "results.csv")
    test_sizes = {lang: int((test.language_index == index).sum()) for index, lang in enumerate(LANGS)}
    report = render_report(summaries, kd_weight_init=list(config.distill.kd_weight_init), test_sizes=test_sizes,
                           run_settings=settings, title=title)
    write_report(report, out_dir / "report.md")
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
