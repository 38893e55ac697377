"""The compare job submitted twice to a real local Ray head (`ray start --head` on 127.0.0.1, token auth on).

The first submission goes through `ray job submit` and the second through `rlkd job submit`. Both run at
the same time, so a shared controller name or output folder would break one of them.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO_ROOT, free_port, kill_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

VENV_BIN = Path(sys.executable).parent
METHODS = "kd,rl"
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def client_env() -> dict:
    # `ray start --head` turns token authentication on; clients then send the token from ~/.ray/auth_token.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)  # conftest's "local" is for in-process Ray; these commands get --address
    return env


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head started by cluster/start-local-head.sh in the foreground (--block), stopped by SIGTERM."""
    log_path = tmp_path_factory.mktemp("head") / "head.log"
    # Every port is free-picked: another Ray on the machine may hold the defaults, the agent's 52365 included.
    ports = {name: free_port() for name in ("RLKD_RAY_PORT", "RLKD_DASHBOARD_PORT", "RLKD_METRICS_PORT",
                                            "RLKD_AGENT_PORT", "RLKD_CLIENT_PORT")}
    env = {**client_env(), **{name: str(port) for name, port in ports.items()}, "RLKD_NUM_CPUS": "2"}
    log = open(log_path, "wb")
    head = subprocess.Popen(["bash", str(REPO_ROOT / "cluster" / "start-local-head.sh"), "--block"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT)
    address = f"http://127.0.0.1:{ports['RLKD_DASHBOARD_PORT']}"
    try:
        wait_for_dashboard(address, head, log_path)
        yield address
    finally:
        stop_session(head)
        forget_head(ports["RLKD_RAY_PORT"])
        log.close()


def stop_session(head: subprocess.Popen) -> None:
    """Stop the head like Ctrl-C would, then anything left of its session; other Ray instances stay untouched."""
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=90)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(timeout=30)
    kill_session(head.pid)


def forget_head(gcs_port: int) -> None:
    """Remove Ray's record of this head, which `ray start` writes and only `ray stop` removes.

    While it names a head, a bare `ray.init()` on this machine connects there instead of starting a
    local Ray, so later tests would try to reach the stopped head.
    """
    record = Path("/tmp/ray/ray_current_cluster")
    if record.is_file() and record.read_text().strip().endswith(f":{gcs_port}"):
        record.unlink()


def wait_for_dashboard(address: str, head: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"the Ray head exited with {head.returncode}: {log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any HTTP status, even 401 without a token, means the job server is up
        except OSError:
            time.sleep(1)
    pytest.fail(f"the Ray dashboard at {address} never answered: {log_path.read_text()[-3000:]}")


def job_command(sentimix_dir: Path, out_base: Path, cache_dir: Path) -> list[str]:
    return ["python", "jobs/compare.py", "--smoke-test", "--methods", METHODS, "--data", str(sentimix_dir),
            "--out", str(out_base / "compare-{run_id}"), "--cache-dir", str(cache_dir)]


def ray_job(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "ray"), "job", *args], env=client_env(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_jobs(ray_head, sentimix_dir, smoke_cache_dir, tmp_path_factory):
    out_base = tmp_path_factory.mktemp("jobs")
    cache_dir = smoke_cache_dir
    # The job runs in a copy of the working dir, so every path it gets is absolute.
    command = job_command(sentimix_dir.resolve(), out_base, cache_dir)

    first = ray_job("submit", "--address", ray_head, "--runtime-env", "jobs/runtime_env.yaml", "--no-wait", "--",
                    *command)
    assert first.returncode == 0, first.stdout + first.stderr
    first_id = next(word.strip("'") for word in first.stdout.split() if word.strip("'").startswith("raysubmit_"))

    second = subprocess.run([str(VENV_BIN / "rlkd"), "job", "submit", "--address", ray_head, "--timeout", "900",
                             "--", *command], env=client_env(), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=1000)
    first_status = wait_for_job(ray_head, first_id)
    first_logs = ray_job("logs", "--address", ray_head, first_id).stdout
    return out_base, (first_status, first_logs), second


def wait_for_job(address: str, submission_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ray_job("status", "--address", address, submission_id)
        # `ray job status` words a finished job as "Job '<id>' succeeded", "failed" or "was stopped".
        ended = re.search(r"Job '[^']+' (succeeded|failed|was stopped)", ANSI_CODES.sub("", result.stdout + result.stderr))
        if ended:
            return ended.group(1).split()[-1].upper()
        time.sleep(5)
    return "TIMEOUT"


def test_both_submissions_succeed(two_jobs):
    _, (first_status, first_logs), second = two_jobs

    assert first_status == "SUCCEEDED", first_logs[-4000:]
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "SUCCEEDED" in second.stdout.splitlines()[-1]


def test_submissions_write_separate_complete_runs(two_jobs):
    out_base, (_, first_logs), second = two_jobs

    runs = sorted(out_base.glob("compare-*"))
    assert len(runs) == 2, runs
    reported = {line.split("report: ", 1)[1].strip() for logs in (first_logs, second.stdout)
                for line in logs.splitlines() if line.startswith("report: ")}
    assert reported == {str(run / "report.md") for run in runs}
    for run in runs:
        results = pd.read_csv(run / "results.csv")
        assert set(results["method"]) == {"teacher", "kd", "rl"}
        assert set(results["lang"]) == {"en", "es", "hi", "all"}
        assert results["macro_f1"].between(0, 1).all()
        history = json.loads((run / "controller_history.json").read_text())
        assert history and all(len(decision["rewards"]) >= 2 for decision in history)
    # Each run named its controller after its own run id.
    controllers = [sorted(path.name for path in (run / "controller").iterdir()) for run in runs]
    assert controllers[0] != controllers[1]


def test_submit_without_token_mode_is_one_clear_line(ray_head):
    env = client_env()
    env.pop("RAY_AUTH_MODE")

    result = subprocess.run([str(VENV_BIN / "rlkd"), "job", "submit", "--address", ray_head, "--no-wait", "--",
                             "python", "jobs/compare.py", "--help"], env=env, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)

    # Log lines may come first; the error itself is one line, without a traceback.
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_line.startswith(f"rlkd: error: cannot submit to {ray_head}")
    assert "RAY_AUTH_MODE=token" in last_line
    assert "Traceback" not in result.stderr
