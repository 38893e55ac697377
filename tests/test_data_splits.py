"""prepare_splits: split assignment, stratified sampling, the Parquet cache and to_hf_datasets."""

import json
import math
import os
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

import rlkd.data.cache
import rlkd.data.splits
from rlkd.constants import LABELS
from rlkd.data import DataError, prepare_splits, read_corpus_file, to_hf_datasets
from rlkd.data.features import FRAME_COLUMNS
from rlkd.data.splits import STRATA, allocate, split_of_source


def sentimix_bytes(tweets) -> bytes:
    """Encode (id, label, [(token, tag), ...]) tweets as a SentiMix file with CRLF endings."""
    blocks = []
    for tweet_id, label, tokens in tweets:
        lines = [f"meta\t{tweet_id}\t{label}", *(f"{token}\t{tag}" for token, tag in tokens)]
        blocks.append("\r\n".join(lines))
    return ("\r\n\r\n".join(blocks) + "\r\n").encode("utf-8")


def spanglish_tweets(count: int, first_id: int = 1):
    tweets = []
    for index in range(count):
        label = LABELS[index % 3]
        if index % 2:
            tokens = [("hola", "lang2"), ("amigo", "lang2"), ("hi", "lang1")]
        else:
            tokens = [("hello", "lang1"), ("my", "lang1"), ("amigo", "lang2"), ("!", "other")]
        tweets.append((first_id + index, label, tokens))
    return tweets


def make_corpus(folder: Path, train: int = 200, trial: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_spanglish.txt").write_bytes(sentimix_bytes(spanglish_tweets(train)))
    (folder / "spanglish_trial.txt").write_bytes(sentimix_bytes(spanglish_tweets(trial)))
    return folder


def entries(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.iterdir() if path.name.startswith("splits-"))


def test_split_sizes(tmp_path):
    splits = prepare_splits(make_corpus(tmp_path / "data"), tmp_path / "cache")

    assert sorted(splits) == ["dev", "test", "train"]
    assert len(splits["dev"]) == 20
    assert len(splits["train"]) == 180
    assert len(splits["test"]) == 30
    for frame in splits.values():
        assert list(frame.columns) == list(FRAME_COLUMNS)
        assert list(frame.index) == list(range(len(frame)))


def test_split_ids_disjoint(tmp_path):
    splits = prepare_splits(make_corpus(tmp_path / "data"), tmp_path / "cache")
    train, dev, test = (set(splits[name]["id"]) for name in ("train", "dev", "test"))

    assert not train & dev
    assert not train & test
    assert not dev & test
    assert train | dev == {f"train_spanglish:{index}" for index in range(1, 201)}
    assert all(source.endswith("spanglish_trial.txt") for source in splits["test"]["source_file"])


def test_dev_split_stratified(tmp_path):
    data = make_corpus(tmp_path / "data")
    splits = prepare_splits(data, tmp_path / "cache", dev_fraction=0.25)
    full = read_corpus_file(data / "train_spanglish.txt").frame
    full_sizes = full.groupby(list(STRATA)).size()
    dev_sizes = splits["dev"].groupby(list(STRATA)).size().reindex(full_sizes.index, fill_value=0)

    assert len(splits["dev"]) == 50
    for key, size in full_sizes.items():
        share = size * 0.25
        assert dev_sizes[key] in (math.floor(share), math.ceil(share)), key


def test_cache_hit_returns_equal_frames(tmp_path, monkeypatch):
    data = make_corpus(tmp_path / "data")
    first = prepare_splits(data, tmp_path / "cache")

    def read_corpus_must_not_run(*args, **kwargs):
        raise AssertionError("cache miss: read_corpus was called")

    monkeypatch.setattr(rlkd.data.splits, "read_corpus", read_corpus_must_not_run)
    second = prepare_splits(data, tmp_path / "cache")

    for name in ("train", "dev", "test"):
        pd.testing.assert_frame_equal(second[name], first[name])
    assert isinstance(second["train"].iloc[0]["tokens"], list)
    assert len(entries(tmp_path / "cache")) == 1


def test_new_entry_per_seed_and_fraction(tmp_path):
    data = make_corpus(tmp_path / "data")
    cache = tmp_path / "cache"
    base = prepare_splits(data, cache)
    assert len(entries(cache)) == 1

    other_seed = prepare_splits(data, cache, seed=1)
    assert len(entries(cache)) == 2
    assert set(other_seed["dev"]["id"]) != set(base["dev"]["id"])

    other_fraction = prepare_splits(data, cache, dev_fraction=0.2)
    assert len(entries(cache)) == 3
    assert len(other_fraction["dev"]) == 40

    prepare_splits(data, cache)
    assert len(entries(cache)) == 3


def test_new_entry_when_file_changes(tmp_path):
    data = make_corpus(tmp_path / "data")
    cache = tmp_path / "cache"
    prepare_splits(data, cache)

    train_file = data / "train_spanglish.txt"
    train_file.write_bytes(sentimix_bytes(spanglish_tweets(100)))
    status = train_file.stat()
    os.utime(train_file, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    splits = prepare_splits(data, cache)

    assert len(entries(cache)) == 2
    assert len(splits["train"]) + len(splits["dev"]) == 100


def test_same_seed_same_splits(tmp_path):
    data = make_corpus(tmp_path / "data")
    first = prepare_splits(data, tmp_path / "cache_a", seed=3)
    second = prepare_splits(data, tmp_path / "cache_b", seed=3)

    for name in ("train", "dev", "test"):
        pd.testing.assert_frame_equal(first[name], second[name])


def test_dev_file_used_as_dev(tmp_path):
    data = make_corpus(tmp_path / "data")
    (data / "spanglish_dev.txt").write_bytes(sentimix_bytes(spanglish_tweets(12)))
    splits = prepare_splits(data, tmp_path / "cache", dev_fraction=0.5)

    assert len(splits["train"]) == 200
    assert len(splits["dev"]) == 12
    assert set(splits["dev"]["id"]) == {f"spanglish_dev:{index}" for index in range(1, 13)}


def test_max_tweets_per_file(tmp_path):
    data = make_corpus(tmp_path / "data")
    splits = prepare_splits(data, tmp_path / "cache", max_tweets_per_file=10)

    assert len(splits["test"]) == 10
    assert len(splits["train"]) + len(splits["dev"]) == 10
    assert len(splits["dev"]) == 1
    assert splits["test"]["label"].value_counts().sort_index().tolist() == [4, 3, 3]


def test_rejects_file_written_and_cleared(tmp_path):
    data = make_corpus(tmp_path / "data")
    bad = sentimix_bytes([(1, "postive", [("hola", "lang2")]), (2, "neutral", [("hola", "lang2")])])
    (data / "extra_spanglish.txt").write_bytes(bad)
    cache = tmp_path / "cache"

    with pytest.raises(DataError, match="extra_spanglish.txt:1: invalid label 'postive'"):
        prepare_splits(data, cache)
    prepare_splits(data, cache, mode="lenient")

    lines = (cache / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    reject = json.loads(lines[0])
    assert reject["reason"] == "invalid_label"
    assert reject["line"] == 1
    assert reject["file"] == str(data / "extra_spanglish.txt")

    (data / "extra_spanglish.txt").unlink()
    prepare_splits(data, cache, mode="lenient")
    assert not (cache / "rejects.jsonl").exists()


def test_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    data = make_corpus(tmp_path / "data")
    cache = tmp_path / "cache"
    original_write_table = rlkd.data.cache.write_table
    calls = []

    def write_table_then_fail(frame, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        original_write_table(frame, path)

    monkeypatch.setattr(rlkd.data.cache, "write_table", write_table_then_fail)
    with pytest.raises(OSError, match="disk full"):
        prepare_splits(data, cache)
    assert list(cache.iterdir()) == []

    monkeypatch.setattr(rlkd.data.cache, "write_table", original_write_table)
    splits = prepare_splits(data, cache)
    assert len(splits["train"]) == 180
    assert len(entries(cache)) == 1


def test_unreadable_entry_rebuilt(tmp_path):
    data = make_corpus(tmp_path / "data")
    cache = tmp_path / "cache"
    first = prepare_splits(data, cache)
    (cache / entries(cache)[0] / "dev.parquet").write_bytes(b"not parquet")

    second = prepare_splits(data, cache)
    pd.testing.assert_frame_equal(second["dev"], first["dev"])


def test_no_training_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "spanglish_test.txt").write_bytes(sentimix_bytes(spanglish_tweets(5)))
    with pytest.raises(DataError, match="has no training tweets"):
        prepare_splits(data, tmp_path / "cache")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="no_data: file or folder not found"):
        prepare_splits(tmp_path / "no_data", tmp_path / "cache")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dev_fraction": 1.0}, "invalid dev_fraction"),
        ({"dev_fraction": -0.1}, "invalid dev_fraction"),
        ({"max_tweets_per_file": 0}, "invalid max_tweets_per_file"),
        ({"mode": "fast"}, "invalid mode"),
    ],
)
def test_invalid_arguments(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        prepare_splits(make_corpus(tmp_path / "data"), tmp_path / "cache", **arguments)


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("spanglish_trial.txt", "test"),
        ("hinglish_test.csv", "test"),
        ("test.jsonl", "test"),
        ("latest_tweets.csv", "train"),
        ("hinglish_dev.txt", "dev"),
        ("valid.tsv", "dev"),
        ("devanagari_tweets.txt", "train"),
        ("train_conll_spanglish.txt", "train"),
        ("/data/test_runs/train.txt", "train"),
        ("/data/corpus_hf/validation", "dev"),
    ],
)
def test_split_of_source(name, split):
    assert split_of_source(name) == split


@pytest.mark.parametrize(
    ("sizes", "total", "expected"),
    [
        ([5, 3, 2], 3, [1, 1, 1]),
        ([10, 10], 5, [3, 2]),
        ([1, 1, 1, 1], 0, [0, 0, 0, 0]),
        ([7, 2, 1], 10, [7, 2, 1]),
    ],
)
def test_allocate(sizes, total, expected):
    counts = allocate(np.array(sizes), total)
    assert counts.tolist() == expected
    assert counts.sum() == total


def test_to_hf_datasets(tmp_path):
    splits = prepare_splits(make_corpus(tmp_path / "data"), tmp_path / "cache", dev_fraction=0.0)
    converted = to_hf_datasets(splits)

    assert isinstance(converted, datasets.DatasetDict)
    assert {name: converted[name].num_rows for name in converted} == {"train": 200, "dev": 0, "test": 30}
    assert converted["train"].features["label"].names == list(LABELS)
    assert converted["train"].column_names == list(FRAME_COLUMNS)
    row = converted["train"][0]
    assert row["id"] == splits["train"].iloc[0]["id"]
    assert row["tokens"] == splits["train"].iloc[0]["tokens"]
    assert row["label"] == splits["train"].iloc[0]["label"]
