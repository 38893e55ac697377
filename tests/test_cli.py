"""User errors end with one clear line on stderr and exit code 2, before any training starts."""

import subprocess
import sys

import pytest

from rlkd.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlkd.cli", *args], capture_output=True, text=True, timeout=120)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("rlkd: error:")]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    return errors[0]


def test_missing_data_folder(tmp_path):
    line = one_error_line(run_cli("compare", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")))

    assert line == f"rlkd: error: data folder not found: {tmp_path / 'nowhere'}"


def test_unknown_method(tmp_path):
    line = one_error_line(run_cli("compare", "--data", str(tmp_path), "--methods", "kd,magic"))

    assert "invalid value for methods: 'magic'" in line
    assert "none, kd, dro, temperature, rl" in line


def test_unknown_reward_design(tmp_path):
    line = one_error_line(run_cli("compare", "--data", str(tmp_path), "--set", "controller.reward_design=luck"))

    assert "controller.reward_design" in line
    assert "worst_lang_f1_gain" in line


def test_invalid_override_syntax(tmp_path):
    line = one_error_line(run_cli("compare", "--data", str(tmp_path), "--set", "student.hidden_size"))

    assert "expected section.field=value" in line


def test_undecodable_corpus_file_names_file_and_line(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "train_conll_spanglish.txt").write_bytes(b"meta\t1\tpositive\nhola\tlang2\n\nmeta\t2\tneutral\nbad\xff\tlang1\n")

    line = one_error_line(run_cli("compare", "--data", str(data), "--out", str(tmp_path / "out"),
                                  "--cache-dir", str(tmp_path / "cache")))

    assert "train_conll_spanglish.txt" in line
    assert ":5" in line


def test_inspect_missing_path(tmp_path):
    line = one_error_line(run_cli("data", "inspect", str(tmp_path / "absent.txt")))

    assert "not found" in line


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "compare" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--help"], ["compare", "--help"], ["data", "inspect", "--help"]])
def test_help_texts(args):
    result = run_cli(*args)

    assert result.returncode == 0
    assert "usage: rlkd" in result.stdout


def test_missing_test_split_is_one_line(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    rows = "\n".join(f"tweet number {i} is {'good' if i % 2 else 'bad'},{'positive' if i % 2 else 'negative'}" for i in range(60))
    (data / "train.csv").write_text("text,label\n" + rows + "\n")

    line = one_error_line(run_cli("compare", "--data", str(data), "--out", str(tmp_path / "out"),
                                  "--cache-dir", str(tmp_path / "cache")))

    assert "the test split" in line
    assert "is empty" in line


def test_data_file_instead_of_folder(tmp_path):
    corpus = tmp_path / "train.csv"
    corpus.write_text("text,label\nhola,positive\n")

    line = one_error_line(run_cli("compare", "--data", str(corpus)))

    assert "must be a folder, not a file" in line


def test_more_workers_than_cpus_fails_before_work(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nhello there,positive\n")

    line = one_error_line(run_cli("compare", "--data", str(tmp_path), "--set", "scaling.num_workers=64"))

    assert "scaling.num_workers" in line
    assert "CPUs" in line
