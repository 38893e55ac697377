"""Submitting rlkd's `ray job` entrypoints: the runtime environment, its upload size, and the submission itself."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

RUNTIME_ENV_FILE = Path("jobs") / "runtime_env.yaml"
# Ray rejects a working_dir package from this size on (ray._private.runtime_env.packaging.GCS_STORAGE_MAX_SIZE).
DEFAULT_UPLOAD_LIMIT = 512 * 1024 * 1024
# Markers of environment variable names that must never travel in a runtime environment, because Ray shows
# runtime environments in its dashboard and the job's logs to everyone who can reach the cluster.
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY")
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


class JobError(ValueError):
    """A job that cannot be submitted as asked, or that did not succeed."""


@dataclass
class UploadSize:
    total_bytes: int
    files: int
    largest: list[tuple[int, str]]  # (bytes, path relative to the working dir), biggest first


def upload_limit() -> int:
    """Ray's own limit when its private constant is there, else the documented 512 MiB."""
    try:
        from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE
    except ImportError:
        return DEFAULT_UPLOAD_LIMIT
    return int(GCS_STORAGE_MAX_SIZE)


def load_runtime_env(path: Path) -> dict:
    """Read a runtime-environment YAML and reject one that carries a secret in `env_vars`."""
    try:
        runtime_env = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise JobError(f"cannot read runtime environment {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise JobError(f"invalid YAML in {path}: {error}".replace("\n", " ")) from None
    if not isinstance(runtime_env, dict):
        raise JobError(f"invalid runtime environment {path}: the top level must be a mapping")
    check_no_secrets(runtime_env, str(path))
    return runtime_env


def check_no_secrets(runtime_env: dict, source: str) -> None:
    for name in (runtime_env.get("env_vars") or {}):
        if any(marker in name.upper() for marker in SECRET_MARKERS):
            raise JobError(f"{source}: env_vars.{name} looks like a secret; Ray shows a job's runtime environment "
                           "in its dashboard and logs, so pass secrets through the cluster's own environment instead")


def measure_upload(working_dir: Path, excludes: list[str]) -> UploadSize:
    """Size of what Ray would pack from `working_dir`: Ray's own walk, with its excludes, .gitignore and .rayignore.

    Sizes are before compression, so the figure is an upper bound of what Ray uploads.
    """
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    root = working_dir.resolve()
    sizes: list[tuple[int, str]] = []

    def add(path: Path) -> None:
        if path.is_file() and not path.is_symlink():
            sizes.append((path.stat().st_size, str(path.relative_to(root))))

    _dir_travel(root, [_get_excludes(root, list(excludes))], add, include_gitignore=True,
                logger=logging.getLogger("ray"))
    sizes.sort(reverse=True)
    return UploadSize(sum(size for size, _ in sizes), len(sizes), sizes[:5])


def check_upload_size(working_dir: Path, runtime_env: dict, limit: int | None = None) -> UploadSize:
    """Reject, before Ray packs anything, a working dir that would pass Ray's upload limit."""
    limit = upload_limit() if limit is None else limit
    size = measure_upload(working_dir, runtime_env.get("excludes") or [])
    if size.total_bytes >= limit:
        largest = ", ".join(f"{path} ({_mib(count)})" for count, path in size.largest)
        raise JobError(
            f"working directory {working_dir.resolve()} would upload {_mib(size.total_bytes)} in {size.files} files, "
            f"over Ray's limit of {_mib(limit)}; largest: {largest}. Add them to `excludes` in the runtime "
            f"environment or to .rayignore, or keep data and outputs outside the working dir"
        )
    return size


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


def job_runtime_env(repo_root: Path, runtime_env_file: Path | None = None) -> dict:
    """Load the runtime environment of a job submitted from `repo_root`, with its working_dir made absolute."""
    path = runtime_env_file or repo_root / RUNTIME_ENV_FILE
    runtime_env = load_runtime_env(path)
    working_dir = runtime_env.get("working_dir", ".")
    if "://" not in str(working_dir):
        working_dir_path = (repo_root / working_dir).resolve()
        check_upload_size(working_dir_path, runtime_env)
        runtime_env["working_dir"] = str(working_dir_path)
    return runtime_env


def submit(address: str, entrypoint: str, runtime_env: dict) -> str:
    """Submit one job; return its submission id."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    submission_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    logger.info("submitted %s as %s to %s", entrypoint, submission_id, address)
    return submission_id


def wait(address: str, submission_id: str, timeout_s: float) -> tuple[str, str]:
    """Wait for a job to end; return its final status and logs. A job still running at the timeout is an error."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(submission_id)).split(".")[-1]
        if status in TERMINAL_STATES:
            return status, client.get_job_logs(submission_id)
        if time.monotonic() > deadline:
            raise JobError(f"job {submission_id} still {status} after {timeout_s:.0f} s; "
                           f"follow it with `ray job logs -f {submission_id}`")
        time.sleep(2)


def auth_hint() -> str:
    """Return a hint for a cluster started with `ray start --head`, which rejects clients without a token."""
    if os.environ.get("RAY_AUTH_MODE") == "token":
        return ""
    return " (a cluster started with `ray start --head` needs RAY_AUTH_MODE=token on the client)"
