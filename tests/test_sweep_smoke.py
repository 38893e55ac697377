"""`rlkd sweep --smoke-test` end to end on the real SentiMix files: four trials, one per reward design."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _rlkd(*args: str, timeout: int = 840) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlkd.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sweep_run(sentimix_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    cache = tmp_path_factory.mktemp("cache")
    common = ["--data", str(sentimix_dir), "--out", str(out), "--cache-dir", str(cache)]
    result = _rlkd("sweep", "--smoke-test", *common)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, common


def test_one_row_per_reward_design(sweep_run):
    out, _ = sweep_run
    table = pd.read_csv(out / "sweep.csv")

    assert sorted(table["config:controller.reward_design"]) == sorted(
        ["macro_f1_gain", "worst_lang_f1_gain", "balanced", "gain_minus_cost"])
    assert set(table["status"]) <= {"completed", "stopped early"}
    assert (table["reports"] >= 1).all()
    assert table["best macro_f1/worst_lang"].between(0, 1).all()
    best = table.iloc[0]
    assert best["best macro_f1/worst_lang"] == table["best macro_f1/worst_lang"].max()
    assert Path(best["best checkpoint"], "history.json").is_file()


def test_summary_names_the_best_config(sweep_run):
    out, _ = sweep_run
    summary = (out / "sweep.md").read_text()

    assert "## Best config" in summary
    assert "- controller.reward_design: " in summary
    assert summary.count("\n| ") >= 5  # header and at least four trials


def test_second_sweep_into_same_folder_is_refused(sweep_run):
    _, common = sweep_run

    result = _rlkd("sweep", "--smoke-test", *common, timeout=120)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("rlkd: error: ")
    assert "--resume" in result.stderr


def test_resume_of_a_finished_sweep_keeps_its_results(sweep_run):
    out, common = sweep_run
    before = pd.read_csv(out / "sweep.csv")

    result = _rlkd("sweep", "--smoke-test", "--resume", *common, timeout=600)

    assert result.returncode == 0, result.stderr[-4000:]
    after = pd.read_csv(out / "sweep.csv")
    assert sorted(after["trial_id"]) == sorted(before["trial_id"])


def test_resume_without_a_sweep_fails_clearly(tmp_path, sentimix_dir):
    result = _rlkd("sweep", "--resume", "--data", str(sentimix_dir), "--out", str(tmp_path / "empty"), timeout=120)

    assert result.returncode == 2
    assert "nothing to resume" in result.stderr.strip().splitlines()[-1]
