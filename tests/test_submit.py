"""Job submission guards: upload size, excludes and secrets, checked before anything reaches a cluster."""

import os

import pytest
import yaml

from rlkd.cli import main
from rlkd.submit import JobError, check_upload_size, job_runtime_env, load_runtime_env, measure_upload

from conftest import REPO_ROOT

MIB = 2**20


def write_env(folder, **fields):
    path = folder / "runtime_env.yaml"
    path.write_text(yaml.safe_dump({"working_dir": ".", **fields}))
    return path


def sparse_file(path, size):
    # A sparse file: its size counts, but it costs no disk.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_repository_runtime_env_excludes_local_state():
    runtime_env = load_runtime_env(REPO_ROOT / "jobs" / "runtime_env.yaml")
    for name in ("/.git", "/.venv", "/outputs", "/data"):
        assert name in runtime_env["excludes"]


def test_repository_upload_excludes_local_state():
    runtime_env = load_runtime_env(REPO_ROOT / "jobs" / "runtime_env.yaml")
    size = measure_upload(REPO_ROOT, runtime_env["excludes"])

    packed = {path for _, path in size.largest}
    assert not any(path.startswith((".venv/", ".git/", "outputs/")) for path in packed)
    assert size.total_bytes < 20 * MIB


def test_excludes_follow_ray_patterns(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "compare.py").write_text("print('hi')\n")
    (tmp_path / "platform" / "rlkd" / "data").mkdir(parents=True)
    (tmp_path / "platform" / "rlkd" / "data" / "reader.py").write_text("x = 1\n")
    sparse_file(tmp_path / "data" / "corpus.txt", 10 * MIB)

    size = measure_upload(tmp_path, ["/data"])

    assert sorted(path for _, path in size.largest) == ["jobs/compare.py", "platform/rlkd/data/reader.py"]


def test_oversized_working_dir_is_refused_with_its_size(tmp_path):
    sparse_file(tmp_path / "checkpoints" / "big.bin", 600 * MIB)
    write_env(tmp_path)

    with pytest.raises(JobError) as error:
        check_upload_size(tmp_path, {"working_dir": "."})

    message = str(error.value)
    assert "600.0 MiB" in message
    assert "512.0 MiB" in message
    assert "checkpoints/big.bin" in message


def test_excluded_large_file_passes(tmp_path):
    sparse_file(tmp_path / "checkpoints" / "big.bin", 600 * MIB)
    (tmp_path / "job.py").write_text("print('hi')\n")

    size = check_upload_size(tmp_path, {"excludes": ["/checkpoints"]})

    assert size.files == 1


def test_gitignored_files_do_not_count(tmp_path):
    sparse_file(tmp_path / "outputs" / "big.bin", 600 * MIB)
    (tmp_path / ".gitignore").write_text("outputs/\n")

    assert check_upload_size(tmp_path, {}).total_bytes < MIB


@pytest.mark.parametrize("name", ["GRAFANA_TOKEN", "aws_secret_access_key", "DB_PASSWORD", "OPENAI_API_KEY"])
def test_secret_in_runtime_env_is_refused(tmp_path, name):
    path = write_env(tmp_path, env_vars={name: "x"})

    with pytest.raises(JobError, match=f"env_vars.{name}"):
        load_runtime_env(path)


def test_invalid_runtime_env_names_the_file(tmp_path):
    path = tmp_path / "runtime_env.yaml"
    path.write_text("working_dir: [\n")

    with pytest.raises(JobError, match="runtime_env.yaml"):
        load_runtime_env(path)


def test_cli_refuses_oversized_dir_before_contacting_the_cluster(tmp_path, monkeypatch, capsys):
    sparse_file(tmp_path / "big.bin", 600 * MIB)
    write_env(tmp_path)
    monkeypatch.chdir(tmp_path)

    # Port 9 on loopback: nothing listens, and the refusal must come before any connection.
    code = main(["job", "submit", "--address", "http://127.0.0.1:9", "--runtime-env", "runtime_env.yaml", "--",
                 "python", "job.py"])

    err = capsys.readouterr().err
    assert code == 2
    assert "600.0 MiB" in err
    assert err.count("\n") == 1


def test_cli_needs_an_entrypoint(tmp_path, monkeypatch, capsys):
    write_env(tmp_path)
    monkeypatch.chdir(tmp_path)

    assert main(["job", "submit", "--runtime-env", "runtime_env.yaml"]) == 2
    assert "no entrypoint" in capsys.readouterr().err


def test_job_runtime_env_resolves_the_working_dir(tmp_path):
    (tmp_path / "jobs").mkdir()
    write_env(tmp_path / "jobs", excludes=["/outputs"])

    runtime_env = job_runtime_env(tmp_path, tmp_path / "jobs" / "runtime_env.yaml")

    assert runtime_env["working_dir"] == str(tmp_path.resolve())
    assert os.path.isabs(runtime_env["working_dir"])
