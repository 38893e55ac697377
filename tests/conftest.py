import os
import signal
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Every test starts its own Ray. Without this, `ray.init()` (and `rlkd` in a subprocess) would join a head
# that `ray start` left running on this machine, and share or fight over its CPUs.
os.environ["RAY_ADDRESS"] = "local"

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sentimix_dir() -> Path:
    """The real SentiMix corpus, read in place (RLKD_DATA or ../shared/data/sentimix)."""
    path = Path(os.environ.get("RLKD_DATA", REPO_ROOT.parent / "shared" / "data" / "sentimix"))
    if not path.is_dir():
        pytest.fail(f"SentiMix corpus not found at {path}; set RLKD_DATA")
    return path


@pytest.fixture(scope="session")
def smoke_cache_dir(tmp_path_factory) -> Path:
    """One data and teacher cache for every smoke-profile run of the session, so the teacher trains once."""
    return tmp_path_factory.mktemp("smoke-cache")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kill_session(session_id: int) -> None:
    """SIGKILL every process left in a session: Ray workers move to process groups of their own, not sessions."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.getsid(int(entry)) == session_id:
                os.kill(int(entry), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
