"""Read corpus files and folders in any supported format into one tweet table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rlkd.data.conll import LINCE, SENTIMIX, read_conll_file
from rlkd.data.errors import DUPLICATE_ID, DataError, log_level_for
from rlkd.data.features import empty_frame
from rlkd.data.hf import HF, is_hf_dataset_dir, read_hf_dir
from rlkd.data.results import ReadResult
from rlkd.data.tabular import CSV, JSONL, TSV, read_table_file
from rlkd.data.tagmaps import merge_tag_maps
from rlkd.data.tweets import ReadOptions, TweetCollector, validate_mode

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("auto", SENTIMIX, LINCE, CSV, TSV, JSONL, HF)
TABLE_SUFFIXES: dict[str, str] = {".csv": CSV, ".tsv": TSV, ".jsonl": JSONL, ".ndjson": JSONL}
CONLL_SUFFIXES: tuple[str, ...] = (".txt", ".conll")


def detect_format(path: Path) -> str:
    """Return the format of ``path`` from its suffix, or from its first line for CoNLL files.

    A ``save_to_disk`` folder is HF. .csv, .tsv and .jsonl (or .ndjson) files
    are tables. Any other file is CoNLL: SentiMix when its first non-blank
    line starts with the field ``meta``, else LinCE-style.
    """
    if path.is_dir():
        if is_hf_dataset_dir(path):
            return HF
        raise DataError.at(path, "is a folder but not a Hugging Face dataset; use read_corpus to read a folder")
    return TABLE_SUFFIXES.get(path.suffix.lower(), "conll")


def is_corpus_entry(path: Path) -> bool:
    """Return whether a folder entry is read by read_corpus.

    Corpus entries are .txt, .conll, .csv, .tsv, .jsonl and .ndjson files
    and ``save_to_disk`` folders. Hidden names are skipped, and so are
    README files and .labels files (label files of LinCE-style corpora).
    """
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return is_hf_dataset_dir(path)
    if path.stem.lower() == "readme":
        return False
    return path.is_file() and path.suffix.lower() in (*CONLL_SUFFIXES, *TABLE_SUFFIXES)


def list_corpus_entries(folder: Path) -> list[Path]:
    """Return the corpus entries directly inside ``folder``, sorted by name.

    Raises DataError when there are none.
    """
    entries = sorted((entry for entry in folder.iterdir() if is_corpus_entry(entry)), key=lambda entry: entry.name)
    skipped = sorted(entry.name for entry in folder.iterdir() if not is_corpus_entry(entry))
    if skipped:
        logger.info("%s: skipped entries that are not corpora: %s", folder, ", ".join(skipped))
    if not entries:
        raise DataError.at(
            folder,
            "contains no corpus files; expected .txt, .conll, .csv, .tsv, .jsonl files or save_to_disk folders",
        )
    return entries


def read_corpus_file(
    path: str | Path,
    *,
    fmt: str = "auto",
    mode: str = "strict",
    tag_map: Mapping[str, str] | None = None,
    pair: str | None = None,
) -> ReadResult:
    """Read one corpus file, or one ``save_to_disk`` folder, into a tweet table.

    ``fmt`` is "auto" or one of "sentimix", "lince", "csv", "tsv", "jsonl",
    "hf". ``mode`` "strict" raises DataError at the first malformed record.
    "lenient" skips it and records a Reject. ``tag_map`` maps this file's tags
    to rlkd codes and replaces the map chosen from the file name or tags.
    ``pair`` names the pair of tweets whose row names none, and a SentiMix
    pair name also selects that map. Without it the pair is the tag map's
    name, else the file stem.
    """
    validate_mode(mode)
    options = ReadOptions(mode=mode, maps=merge_tag_maps(), tag_map=tag_map, pair=pair)
    return _combine(read_entry(Path(path), fmt, options))


def read_corpus(
    path: str | Path,
    *,
    mode: str = "strict",
    tag_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> ReadResult:
    """Read a corpus file, or every corpus entry directly inside a folder, into one table.

    Formats are detected as in read_corpus_file. ``tag_maps`` adds tag maps
    or extends the SentiMix ones (see merge_tag_maps). Tweets of a folder's
    files get the folder name as pair when neither their row nor a tag map
    names one. Raises DataError when the path does not exist, when a folder
    has no corpus entry, or when two files give the same tweet id.
    """
    validate_mode(mode)
    path = Path(path)
    maps = merge_tag_maps(tag_maps)
    if not path.exists():
        raise DataError.at(path, "file or folder not found")
    if path.is_dir() and not is_hf_dataset_dir(path):
        options = ReadOptions(mode=mode, maps=maps, fallback_pair=path.name)
        collectors = [collector for entry in list_corpus_entries(path) for collector in read_entry(entry, "auto", options)]
    else:
        collectors = read_entry(path, "auto", ReadOptions(mode=mode, maps=maps))
    return _combine(collectors)


def read_entry(path: Path, fmt: str, options: ReadOptions) -> list[TweetCollector]:
    """Read one file or ``save_to_disk`` folder and log its counts."""
    if fmt not in FORMATS:
        raise ValueError(f"invalid format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError.at(path, "file not found")
    if fmt == "auto":
        fmt = detect_format(path)

    if fmt == HF:
        collectors = read_hf_dir(path, options)
    elif fmt in (CSV, TSV, JSONL):
        collectors = [read_table_file(path, fmt, options)]
    else:
        collectors = [read_conll_file(path, fmt, options)]
    for collector in collectors:
        _log_counts(collector)
    return collectors


def _log_counts(collector: TweetCollector) -> None:
    counts = collector.counts
    logger.info(
        "%s: read %d tweets as %s (pair %s): %d kept, %d rejected",
        collector.source,
        counts.tweets,
        counts.format,
        counts.pair,
        counts.kept,
        counts.rejected,
    )
    if counts.reasons:
        summary = ", ".join(f"{reason}={count}" for reason, count in sorted(counts.reasons.items()))
        logger.log(log_level_for(counts.reasons), "%s: rejects and repairs by reason: %s", collector.source, summary)


def _combine(collectors: list[TweetCollector]) -> ReadResult:
    frames = [collector.frame() for collector in collectors]
    frames = [frame for frame in frames if len(frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    _check_unique_ids(frame)
    rejects = [reject for collector in collectors for reject in collector.rejects]
    counts = {collector.source: collector.counts for collector in collectors}
    return ReadResult(frame=frame, rejects=rejects, counts=counts)


def _check_unique_ids(frame: pd.DataFrame) -> None:
    duplicated = frame["id"].duplicated(keep=False)
    if not duplicated.any():
        return
    first_id = frame.loc[duplicated, "id"].iloc[0]
    clashes = frame.loc[frame["id"] == first_id]
    files = ", ".join(dict.fromkeys(clashes["source_file"]))
    raise DataError.at(
        clashes["source_file"].iloc[0],
        f"tweet id {first_id!r} also comes from another file ({files}); "
        "ids are '<file stem>:<id>', so rename one of the files",
        line=int(clashes["line"].iloc[0]),
        reason=DUPLICATE_ID,
    )
