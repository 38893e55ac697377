"""On-disk cache of prepared splits: Parquet tables in a folder named by a hash of inputs and arguments."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rlkd.data.features import PARQUET_SCHEMA, normalize_frame
from rlkd.data.results import Reject

logger = logging.getLogger(__name__)

# Part of every cache key. Bump it when a change to the readers or the split
# logic changes the tables, so that old cache entries are not reused.
CACHE_FORMAT_VERSION = 1
SPLIT_NAMES: tuple[str, ...] = ("train", "dev", "test")
REJECTS_FILE = "rejects.jsonl"
ENTRY_PREFIX = "splits-"


def fingerprint_inputs(entries: list[Path]) -> list[dict[str, object]]:
    """Return path, size and modification time of every file that the entries read.

    A folder entry (a ``save_to_disk`` folder) contributes all files under
    it; a file contributes itself and its ``.labels`` file when one exists.
    """
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            files.extend(sorted(path for path in entry.rglob("*") if path.is_file()))
        else:
            files.append(entry)
            label_file = entry.with_suffix(".labels")
            if label_file.is_file():
                files.append(label_file)
    fingerprints = []
    for path in files:
        status = path.stat()
        fingerprints.append({"path": str(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns})
    return fingerprints


def cache_key(inputs: list[dict[str, object]], arguments: Mapping[str, object]) -> str:
    """Return a hex digest of the input fingerprints, the arguments and CACHE_FORMAT_VERSION."""
    payload = json.dumps(
        {"version": CACHE_FORMAT_VERSION, "inputs": inputs, "arguments": arguments},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def entry_path(cache_dir: Path, key: str) -> Path:
    """Return the folder of the cache entry for ``key``."""
    return cache_dir / f"{ENTRY_PREFIX}{key}"


def load_entry(cache_dir: Path, key: str) -> tuple[dict[str, pd.DataFrame], list[Reject]] | None:
    """Return the cached splits and rejects for ``key``, or None when there is no usable entry.

    An entry that exists but cannot be read is logged, deleted and reported
    as missing, so the caller rebuilds it.
    """
    folder = entry_path(cache_dir, key)
    if not folder.is_dir():
        return None
    try:
        splits = {name: read_table(folder / f"{name}.parquet") for name in SPLIT_NAMES}
        rejects = read_rejects(folder / REJECTS_FILE)
    except (OSError, pa.ArrowException, ValueError, KeyError, TypeError) as error:
        logger.warning("cache entry %s is unreadable (%s); deleting and rebuilding it", folder, error)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return splits, rejects


def save_entry(
    cache_dir: Path,
    key: str,
    splits: Mapping[str, pd.DataFrame],
    rejects: list[Reject],
    manifest: Mapping[str, object],
) -> Path:
    """Write the splits, rejects and a manifest as the cache entry for ``key`` and return its folder.

    Everything is written into a temporary folder that os.replace then
    renames to the entry name, so a killed run leaves at most a ``.tmp-``
    folder and never a partial entry. When another process published the
    same entry first, its entry is kept.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = entry_path(cache_dir, key)
    staging = _staging_path(cache_dir, f"{ENTRY_PREFIX}{key}")
    staging.mkdir()
    try:
        for name in SPLIT_NAMES:
            write_table(splits[name], staging / f"{name}.parquet")
        write_rejects(rejects, staging / REJECTS_FILE)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
            logger.info("cache entry %s was written by another process; keeping it", folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a prepared table as Parquet with PARQUET_SCHEMA."""
    table = pa.Table.from_pandas(frame, schema=PARQUET_SCHEMA, preserve_index=False)
    pq.write_table(table, path)


def read_table(path: Path) -> pd.DataFrame:
    """Read a table written by write_table."""
    return normalize_frame(pq.read_table(path).to_pandas())


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """Write one JSON object per Reject, with the keys file, line, reason and record."""
    with open(path, "w", encoding="utf-8") as stream:
        for reject in rejects:
            stream.write(json.dumps(dataclasses.asdict(reject), ensure_ascii=False) + "\n")


def read_rejects(path: Path) -> list[Reject]:
    """Read a file written by write_rejects."""
    with open(path, encoding="utf-8") as stream:
        return [Reject(**json.loads(line)) for line in stream if line.strip()]


def publish_rejects(cache_dir: Path, rejects: list[Reject]) -> Path | None:
    """Write ``<cache_dir>/rejects.jsonl`` for the latest call and return its path.

    It is replaced atomically. When there are no rejects, a file left by an
    earlier call is deleted and None is returned, so the file always
    describes the latest call.
    """
    path = cache_dir / REJECTS_FILE
    if not rejects:
        path.unlink(missing_ok=True)
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = _staging_path(cache_dir, REJECTS_FILE)
    try:
        write_rejects(rejects, staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


def _staging_path(cache_dir: Path, name: str) -> Path:
    # Not tempfile.mkdtemp/mkstemp: they create owner-only files, while the
    # cache should get the usual permissions from the umask.
    return cache_dir / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
