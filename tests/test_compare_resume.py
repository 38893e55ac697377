"""`rlkd compare` killed as a whole while a checkpoint is half written, then `--resume`d: nothing finished is lost."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlkd.train.loop import STALL_IN_CHECKPOINT_ENV

from conftest import kill_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# The smoke profile takes about 16 steps per student with a decision every 5; the `rl` student stalls
# while writing the checkpoint of step 10, so the one of step 5 is the latest complete one.
STALL_STEP = 10
PREVIOUS_CHECKPOINT = 5
SLOW_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # seconds between the Ray Train controller's polls of the workers


def compare_command(sentimix_dir: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlkd.cli", "compare", "--data", str(sentimix_dir.resolve()), "--out", str(out),
            "--cache-dir", str(cache), *extra]


@pytest.fixture(scope="module")
def killed_run(sentimix_dir, smoke_cache_dir, tmp_path_factory):
    """A kd,rl smoke run killed halfway through the rl checkpoint of step 10; returns its folder and timings."""
    folder = tmp_path_factory.mktemp("resume")
    out, marker = folder / "run", folder / "stalled"
    # A slow controller poll widens the window in which a reported checkpoint is not yet recorded. The resume
    # must still start from the checkpoint of step 5, so the loop has to wait for it before writing the next one.
    env = {**os.environ, STALL_IN_CHECKPOINT_ENV: f"rl:{STALL_STEP}:{marker}", SLOW_POLL_ENV: "6"}
    with open(folder / "first.log", "wb") as log:
        run = subprocess.Popen(compare_command(sentimix_dir, out, smoke_cache_dir, "--smoke-test", "--methods", "kd,rl"),
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 900
        while not marker.exists():
            if run.poll() is not None or time.monotonic() > deadline:
                kill_session(run.pid)
                pytest.fail(f"the run never reached the stall (exit {run.poll()}): "
                            f"{(folder / 'first.log').read_text()[-3000:]}")
            time.sleep(0.5)
        kill_session(run.pid)
        run.wait(timeout=60)
    return out, folder


@pytest.fixture(scope="module")
def resumed_run(killed_run, sentimix_dir, smoke_cache_dir):
    out, folder = killed_run
    kd_summary = (out / "students" / "kd" / "summary.json").read_text()
    started = time.monotonic()
    result = subprocess.run(compare_command(sentimix_dir, out, smoke_cache_dir, "--resume"), capture_output=True,
                            text=True, timeout=900)
    recovery_s = time.monotonic() - started
    (folder / "resume.log").write_text(result.stdout + result.stderr)
    return out, result, kd_summary, recovery_s


def test_kill_leaves_finished_results_whole(killed_run):
    out, _ = killed_run

    assert json.loads((out / "run.json").read_text())["config"]["methods"] == ["kd", "rl"]
    kd = json.loads((out / "students" / "kd" / "summary.json").read_text())
    assert kd["method"] == "kd"
    assert 0 <= kd["scores"]["all"]["macro_f1"] <= 1
    assert (out / "students" / "kd" / "model.safetensors").stat().st_size > 0
    # The rl student was mid-run: no summary and no student folder, so nothing half-written looks finished.
    assert not (out / "students" / "rl" / "summary.json").exists()
    assert not (out / "results.csv").exists()


def test_resume_finishes_from_the_last_complete_checkpoint(resumed_run):
    out, result, kd_summary, recovery_s = resumed_run
    logs = result.stdout + result.stderr

    assert result.returncode == 0, logs[-4000:]
    assert "kd (seed 0): finished before the resume" in logs
    assert f"resumed rl training from the checkpoint of step {PREVIOUS_CHECKPOINT}" in logs
    # The finished student was neither trained again nor rewritten.
    assert (out / "students" / "kd" / "summary.json").read_text() == kd_summary
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"teacher", "kd", "rl"}
    decisions = json.loads((out / "controller_history.json").read_text())
    assert sorted(decision["decision_id"] for decision in decisions) == sorted({d["decision_id"] for d in decisions})
    print(f"recovery: resume took {recovery_s:.0f} s")


def test_resume_without_a_run_is_one_clear_line(tmp_path, sentimix_dir, smoke_cache_dir):
    result = subprocess.run(compare_command(sentimix_dir, tmp_path, smoke_cache_dir, "--resume"), capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 2
    assert "nothing to resume" in result.stderr
    assert result.stderr.strip().count("\n") == 0
