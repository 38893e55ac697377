"""Train, dev and test tables from a corpus folder, with stratified sampling and a Parquet cache."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from rlkd.data.cache import (
    SPLIT_NAMES,
    cache_key,
    fingerprint_inputs,
    load_entry,
    publish_rejects,
    save_entry,
)
from rlkd.data.errors import DataError, log_level_for
from rlkd.data.hf import is_hf_dataset_dir
from rlkd.data.reader import list_corpus_entries, read_corpus
from rlkd.data.results import Reject
from rlkd.data.tweets import validate_mode

logger = logging.getLogger(__name__)

# Columns whose combinations are kept in proportion by every sample and split.
STRATA: tuple[str, ...] = ("pair", "dominant_lang", "label")

# A file belongs to the test split when its name contains one of these words,
# and to the dev split for the second list. Words must not be part of a longer
# word, so "latest.csv" and "devanagari.txt" stay training files.
_TEST_NAME = re.compile(r"(?<![a-z])(test|tests|testing|trial|trials)(?![a-z])")
_DEV_NAME = re.compile(r"(?<![a-z])(dev|devel|development|val|valid|validation)(?![a-z])")


def split_of_source(source: str) -> str:
    """Return "test", "dev" or "train" for a source from its file name (or split name for datasets)."""
    name = Path(source).name.lower()
    if _TEST_NAME.search(name):
        return "test"
    if _DEV_NAME.search(name):
        return "dev"
    return "train"


def allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``sizes`` by the largest remainder method.

    Each group gets the floor or the ceiling of its exact share, and the
    results add up to ``total``. Remainders that tie go to the earlier group.
    """
    shares = sizes * total / sizes.sum()
    counts = np.floor(shares).astype(int)
    leftover = total - counts.sum()
    order = np.argsort(-(shares - counts), kind="stable")
    counts[order[:leftover]] += 1
    return counts


def stratified_positions(frame: pd.DataFrame, size: int, seed: int) -> np.ndarray:
    """Return ``size`` sorted row positions drawn at random within STRATA groups.

    Group sizes follow allocate(). The draw depends only on ``seed`` and on
    the table's rows in order.
    """
    if size >= len(frame):
        return np.arange(len(frame))
    if size <= 0:
        return np.array([], dtype=int)
    groups = frame.groupby(list(STRATA), sort=True).indices
    keys = sorted(groups)
    counts = allocate(np.array([len(groups[key]) for key in keys]), size)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(groups[key], size=count, replace=False) for key, count in zip(keys, counts)]
    return np.sort(np.concatenate(chosen))


def sample_per_file(frame: pd.DataFrame, max_tweets: int, seed: int) -> pd.DataFrame:
    """Keep a stratified random sample of at most ``max_tweets`` tweets from each source file."""
    parts = []
    for _, part in frame.groupby("source_file", sort=False):
        positions = stratified_positions(part, max_tweets, seed)
        parts.append(part.iloc[positions])
    if not parts:
        return frame
    return pd.concat(parts).sort_index().reset_index(drop=True)


def build_splits(
    frame: pd.DataFrame,
    sources: list[str],
    *,
    dev_fraction: float,
    seed: int,
    max_tweets_per_file: int | None,
) -> dict[str, pd.DataFrame]:
    """Assign tweets to train, dev and test by their source file name.

    Without a dev file, dev is a stratified sample of ``dev_fraction`` of
    the training tweets (rounded), drawn with ``seed``.
    """
    if max_tweets_per_file is not None:
        frame = sample_per_file(frame, max_tweets_per_file, seed)
    roles = frame["source_file"].map(split_of_source)
    splits = {name: frame[roles == name].reset_index(drop=True) for name in SPLIT_NAMES}

    has_dev_file = any(split_of_source(source) == "dev" for source in sources)
    if not has_dev_file:
        train = splits["train"]
        dev_positions = stratified_positions(train, round(len(train) * dev_fraction), seed)
        is_dev = np.zeros(len(train), dtype=bool)
        is_dev[dev_positions] = True
        splits["dev"] = train[is_dev].reset_index(drop=True)
        splits["train"] = train[~is_dev].reset_index(drop=True)
    return splits


def prepare_splits(
    data_dir: str | Path,
    cache_dir: str | Path,
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    mode: str = "strict",
    max_tweets_per_file: int | None = None,
    tag_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Read a corpus folder and return its "train", "dev" and "test" tables, using the cache when it can.

    Files whose names contain "test" or "trial" as a word form the test
    split, and "dev", "val", "valid" or "validation" the dev split. All
    other files are training data. Without a dev file, dev is a stratified
    sample of training tweets by (pair, dominant_lang, label), of size
    ``dev_fraction`` (0 to <1). ``max_tweets_per_file`` first keeps a
    stratified sample of that many tweets per file, for smoke tests.

    The tables are cached as Parquet under ``cache_dir``, keyed by the path,
    size and mtime of every input file and by all arguments, so an equal call
    reads the cache. Rejects of the call go to ``<cache_dir>/rejects.jsonl``,
    which is deleted when there are none. Raises DataError when the corpus
    cannot be read or has no training tweets.
    """
    validate_mode(mode)
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"invalid dev_fraction {dev_fraction!r}; expected 0 <= dev_fraction < 1")
    if max_tweets_per_file is not None and max_tweets_per_file < 1:
        raise ValueError(f"invalid max_tweets_per_file {max_tweets_per_file!r}; expected None or at least 1")
    data_dir = Path(data_dir)
    cache_dir = Path(cache_dir)
    if not data_dir.exists():
        raise DataError.at(data_dir, "file or folder not found")

    started = time.perf_counter()
    if data_dir.is_dir() and not is_hf_dataset_dir(data_dir):
        entries = list_corpus_entries(data_dir)
    else:
        entries = [data_dir]
    arguments = {
        "data_dir": str(data_dir),
        "dev_fraction": dev_fraction,
        "seed": seed,
        "mode": mode,
        "max_tweets_per_file": max_tweets_per_file,
        "tag_maps": tag_maps,
    }
    key = cache_key(fingerprint_inputs(entries), arguments)

    cached = load_entry(cache_dir, key)
    if cached is not None:
        splits, rejects = cached
        logger.info("prepare_splits: read cache entry %s", key)
    else:
        result = read_corpus(data_dir, mode=mode, tag_maps=tag_maps)
        splits = build_splits(
            result.frame,
            list(result.counts),
            dev_fraction=dev_fraction,
            seed=seed,
            max_tweets_per_file=max_tweets_per_file,
        )
        if splits["train"].empty:
            raise DataError.at(
                data_dir,
                "has no training tweets; files named with test, trial, dev or valid are not used for training",
            )
        rejects = result.rejects
        manifest = {"arguments": arguments, "sizes": {name: len(splits[name]) for name in SPLIT_NAMES}}
        folder = save_entry(cache_dir, key, splits, rejects, manifest)
        logger.info("prepare_splits: wrote cache entry %s", folder)

    publish_rejects(cache_dir, rejects)
    _log_summary(splits, rejects, time.perf_counter() - started)
    return splits


def _log_summary(splits: Mapping[str, pd.DataFrame], rejects: list[Reject], seconds: float) -> None:
    for name in SPLIT_NAMES:
        frame = splits[name]
        by_pair = ", ".join(f"{pair}={count}" for pair, count in frame["pair"].value_counts().sort_index().items())
        logger.info("prepare_splits: %s has %d tweets (%s)", name, len(frame), by_pair or "none")
    if splits["test"].empty:
        logger.warning("prepare_splits: no test tweets; no file name contains 'test' or 'trial'")
    if rejects:
        reasons = Counter(reject.reason for reject in rejects)
        by_reason = ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
        logger.log(log_level_for(reasons), "prepare_splits: %d rejects and repairs (%s)", len(rejects), by_reason)
    logger.info("prepare_splits: done in %.1f s", seconds)
