"""`rlkd compare --smoke-test` end to end on the real SentiMix files: every stage, small and real."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rlkd.constants import LANGS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def smoke_run(sentimix_dir, smoke_cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    cache = smoke_cache_dir
    command = [sys.executable, "-m", "rlkd.cli", "compare", "--smoke-test", "--data", str(sentimix_dir),
               "--out", str(out), "--cache-dir", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, cache, result


def test_results_have_all_rows(smoke_run):
    out, _, _ = smoke_run
    results = pd.read_csv(out / "results.csv")

    assert list(results.columns) == ["method", "seed", "lang", "n", "accuracy", "macro_f1"]
    assert len(results) == 24
    assert set(results["method"]) == {"teacher", "none", "kd", "dro", "temperature", "rl"}
    assert set(results["seed"]) == {0}
    assert set(results["lang"]) == {"en", "es", "hi", "all"}
    assert not results.duplicated(["method", "lang"]).any()
    for column in ("accuracy", "macro_f1"):
        assert results[column].between(0, 1).all(), results


def test_language_counts_add_up(smoke_run):
    out, _, _ = smoke_run
    results = pd.read_csv(out / "results.csv")

    for _, rows in results.groupby("method"):
        by_lang = rows.set_index("lang")["n"]
        assert by_lang[list(LANGS)].sum() == by_lang["all"]
        assert (by_lang[list(LANGS)] > 0).all()


def test_report_and_plots_written(smoke_run):
    out, _, _ = smoke_run
    report = (out / "report.md").read_text()

    for section in ("Macro-F1 per language", "worst language", "parameters", "wall time", "Final KD weights"):
        assert section in report
    for plot in ("kd_weights.png", "f1_by_lang.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_student_checkpoints_load(smoke_run):
    from transformers import AutoModelForSequenceClassification

    out, _, _ = smoke_run
    for method in ("none", "kd", "dro", "temperature", "rl"):
        model = AutoModelForSequenceClassification.from_pretrained(out / "students" / method)
        assert model.config.num_labels == 3
        assert model.config.num_hidden_layers == 1


def test_controller_moved_the_weights(smoke_run):
    out, _, _ = smoke_run
    decisions = json.loads((out / "controller_history.json").read_text())

    assert len(decisions) >= 2
    final = np.asarray(decisions[-1]["applied"])
    assert final.shape == (len(LANGS),)
    assert not np.allclose(final, 1.0)
    np.testing.assert_allclose(final.sum(), len(LANGS), rtol=1e-6)


def test_summaries_keep_the_timings_of_each_part(smoke_run):
    out, _, _ = smoke_run
    timings = {method: json.loads((out / "students" / method / "summary.json").read_text())["timings"]
               for method in ("kd", "rl")}
    rl, kd = timings["rl"], timings["kd"]
    parts = sum(rl[f"controller_{part}_s"] for part in ("propose", "estimate", "update", "sync"))

    assert rl["controller_s"] > 0
    assert rl["controller_estimate_s"] > 0
    assert parts == pytest.approx(rl["controller_s"], rel=0.01)
    assert kd["controller_s"] == 0.0
    for run in (rl, kd):
        assert run["train_s"] > 0
        assert run["eval_s"] > 0
        # Training, evaluation, controller and earlier checkpoints are disjoint parts of the wall time.
        assert run["train_s"] + run["eval_s"] + run["controller_s"] + run["checkpoint_s"] <= run["wall_s"]


def test_teacher_is_cached_for_the_next_run(smoke_run):
    _, cache, _ = smoke_run
    teachers = list((cache / "teachers").iterdir())

    assert len(teachers) == 1
    assert (teachers[0] / "model" / "config.json").is_file()
    assert (teachers[0] / "teacher_logits.parquet").is_file()


def test_evaluate_scores_the_saved_students_again(smoke_run, sentimix_dir):
    out, cache, _ = smoke_run
    command = [sys.executable, "-m", "rlkd.cli", "evaluate", "--run", str(out), "--data", str(sentimix_dir),
               "--cache-dir", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    again = pd.read_csv(out / "evaluation" / "results.csv").set_index(["method", "lang"])
    original = pd.read_csv(out / "results.csv").set_index(["method", "lang"])
    assert set(again.index.get_level_values("method")) == {"none", "kd", "dro", "temperature", "rl"}
    for column in ("n", "accuracy", "macro_f1"):
        np.testing.assert_allclose(again[column], original.loc[again.index, column], atol=1e-4)


def test_teacher_command_reuses_the_cached_teacher(smoke_run, sentimix_dir, tmp_path):
    out, cache, _ = smoke_run
    command = [sys.executable, "-m", "rlkd.cli", "teacher", "--smoke-test", "--data", str(sentimix_dir),
               "--out", str(tmp_path / "teacher-{run_id}"), "--cache-dir", str(cache)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    (run,) = tmp_path.glob("teacher-*")
    assert "{run_id}" not in run.name
    assert "from cache" in (run / "report.md").read_text()
    teacher = pd.read_csv(run / "results.csv")
    original = pd.read_csv(out / "results.csv").query("method == 'teacher'")
    np.testing.assert_allclose(teacher["macro_f1"], original["macro_f1"], atol=1e-4)
