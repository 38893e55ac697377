"""Readers for tables of tweets: CSV, TSV and JSONL files, one tweet per row.

Columns: ``text`` and ``label`` are required. ``label`` is a name from LABELS
(any case) or an id 0..2. Optional columns:

- ``langs``: one language tag per whitespace token of ``text``, separated by
  spaces (or a list in JSONL). Tags are rlkd codes (en, es, hi, other) or tags
  of a known tag map. Without the column every token is "other", so the
  tweet's proportions are split evenly over its pair's languages. A present
  but empty cell is a tag list of the wrong length.
- ``tokens``: the tokens, instead of splitting ``text`` on whitespace.
- ``id``: the tweet id within the file; by default the 1-based row number.
- ``pair``: the pair name of that row; by default the file's pair.

CSV uses standard double-quote quoting. TSV has no quoting, so a quote
character inside a tweet is plain text; a TSV field cannot contain a tab or
a newline. Rows whose fields are all blank are skipped like blank lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlkd.data import errors
from rlkd.data.errors import DataError
from rlkd.data.textfiles import is_blank, read_text, split_lines
from rlkd.data.tweets import ReadOptions, TweetCollector, open_collector

CSV = "csv"
TSV = "tsv"
JSONL = "jsonl"

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
LANGS_COLUMN = "langs"
TOKENS_COLUMN = "tokens"
ID_COLUMN = "id"
PAIR_COLUMN = "pair"


@dataclass
class Row:
    """One table row: its 1-based line (or row number), its values and its raw text.

    ``error`` describes a row that could not be split into values.
    """

    line: int
    number: int
    record: str
    values: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None


def split_field(value: object) -> list[str] | None:
    """Return a token or tag list from a space-separated string or a sequence, or None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(item) for item in value]
    return None


def count_row_tags(rows: Iterable[Row]) -> Counter[str]:
    """Count the language tags of all rows, to choose a tag map."""
    tags: Counter[str] = Counter()
    for row in rows:
        tags.update(tag for tag in split_field(row.values.get(LANGS_COLUMN)) or [] if tag)
    return tags


def collect_rows(rows: list[Row], collector: TweetCollector) -> None:
    """Collect one tweet per row."""
    for row in rows:
        draft = collector.start_tweet(row.line, row.record)
        if row.error is not None:
            collector.fail(draft, row.line, errors.MALFORMED_LINE, row.error)
            collector.finish(draft)
            continue

        values = row.values
        raw_id = values.get(ID_COLUMN)
        if raw_id is None or str(raw_id).strip() == "":
            raw_id = row.number
        collector.set_id(draft, raw_id, row.line)
        collector.set_label(draft, values.get(LABEL_COLUMN), row.line)

        tokens = _row_tokens(values)
        tags = split_field(values.get(LANGS_COLUMN))
        if tokens is None:
            collector.fail(
                draft,
                row.line,
                errors.MALFORMED_LINE,
                f"{TEXT_COLUMN!r} must be a string, or {TOKENS_COLUMN!r} a list of strings",
            )
        elif tags is not None and len(tags) != len(tokens):
            collector.fail(
                draft,
                row.line,
                errors.MISALIGNED_LANGS,
                f"{len(tags)} language tags for {len(tokens)} tokens; expected one tag per whitespace token",
            )
        else:
            for position, token in enumerate(tokens):
                tag = None if tags is None else tags[position]
                collector.add_token(draft, token, tag, row.line, row.record)

        pair = values.get(PAIR_COLUMN)
        collector.finish(draft, None if pair is None else str(pair))


def _row_tokens(values: Mapping[str, object]) -> list[str] | None:
    tokens = values.get(TOKENS_COLUMN)
    if tokens is not None:
        return split_field(tokens)
    text = values.get(TEXT_COLUMN)
    if text is None:
        return []
    if isinstance(text, str):
        return text.split()
    return None


def read_table_file(path: Path, fmt: str, options: ReadOptions) -> TweetCollector:
    """Read a CSV, TSV or JSONL file of tweets."""
    text = read_text(path)
    rows = read_jsonl_rows(text) if fmt == JSONL else read_delimited_rows(path, text, fmt)
    collector = open_collector(
        str(path),
        fmt=fmt,
        id_prefix=path.stem,
        seen_tags=count_row_tags(rows),
        options=options,
    )
    collect_rows(rows, collector)
    return collector


def read_delimited_rows(path: Path, text: str, fmt: str) -> list[Row]:
    """Split CSV or TSV text into rows keyed by the header row.

    Raises DataError when the header lacks ``label`` or both ``text`` and
    ``tokens``.
    """
    if fmt == TSV:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
    lines = split_lines(text)

    header = _next_csv_row(reader, path)
    while header is not None and all(is_blank(name) for name in header):
        header = _next_csv_row(reader, path)
    if header is None:
        raise DataError.at(path, f"no header row; expected columns {TEXT_COLUMN},{LABEL_COLUMN}")
    header = [name.strip() for name in header]
    header_line = reader.line_num
    missing = []
    if TEXT_COLUMN not in header and TOKENS_COLUMN not in header:
        missing.append(TEXT_COLUMN)
    if LABEL_COLUMN not in header:
        missing.append(LABEL_COLUMN)
    if missing:
        raise DataError.at(
            path,
            f"missing column {', '.join(missing)} in header {header}; expected {TEXT_COLUMN},{LABEL_COLUMN}",
            line=header_line,
        )

    rows: list[Row] = []
    while True:
        start = reader.line_num + 1
        fields = _next_csv_row(reader, path)
        if fields is None:
            break
        if all(is_blank(value) for value in fields):
            continue
        record = "\n".join(lines[start - 1 : reader.line_num])
        number = len(rows) + 1
        if len(fields) != len(header):
            error = f"row has {len(fields)} fields; expected {len(header)} as in the header"
            rows.append(Row(start, number, record, error=error))
        else:
            rows.append(Row(start, number, record, dict(zip(header, fields))))
    return rows


def _next_csv_row(reader: Iterator[list[str]], path: Path) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        raise DataError.at(path, f"invalid {path.suffix.lstrip('.').upper()} row: {error}", line=reader.line_num) from None


def read_jsonl_rows(text: str) -> list[Row]:
    """Parse one JSON object per non-blank line."""
    rows: list[Row] = []
    for line_number, line in enumerate(split_lines(text), start=1):
        if is_blank(line):
            continue
        number = len(rows) + 1
        try:
            values = json.loads(line)
        except json.JSONDecodeError as error:
            rows.append(Row(line_number, number, line, error=f"invalid JSON: {error.msg} at column {error.colno}"))
            continue
        if not isinstance(values, dict):
            rows.append(Row(line_number, number, line, error=f"expected a JSON object, found {type(values).__name__}"))
            continue
        rows.append(Row(line_number, number, line, values))
    return rows
