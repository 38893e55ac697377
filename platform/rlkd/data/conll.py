"""Readers for the two CoNLL-style formats: SentiMix and LinCE.

Both have one ``TOKEN<TAB>TAG`` line per token and a blank line between
tweets. A line that holds only whitespace (a lone tab, spaces) also separates
tweets.

SentiMix: each tweet starts with a ``meta<TAB>ID<TAB>LABEL`` header line.

LinCE-style: no header line. A tweet's label and id come from comment lines
before its first token, written ``# label = positive`` and ``# id = 17``
(``sentiment`` and ``sent_id`` are accepted as key names). The labels may
instead come from a label file next to the corpus file with the suffix
``.labels`` (``X.txt`` and ``X.labels``), one label per line in tweet order.
The label file wins over label comments. A comment that disagrees with it
rejects the tweet. Tweets without an id get their 1-based position in the
file. A comment line starts with ``#`` and has no tab, so a hashtag token
such as ``#jamming<TAB>lang1`` is still a token.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlkd.data import errors
from rlkd.data.errors import DataError
from rlkd.data.textfiles import is_blank, read_text, split_lines
from rlkd.data.tweets import ReadOptions, TweetCollector, TweetDraft, open_collector, parse_label

SENTIMIX = "sentimix"
LINCE = "lince"
LABEL_FILE_SUFFIX = ".labels"

HEADER_KEYWORD = "meta"
HEADER_FORMAT = "meta<TAB>ID<TAB>LABEL"
LABEL_KEYS = ("label", "sentiment")
ID_KEYS = ("id", "sent_id")
_COMMENT_PATTERN = re.compile(r"^#\s*([A-Za-z_]+)\s*=\s*(.*?)\s*$")

Block = list[tuple[int, str]]


def iter_blocks(lines: list[str]) -> Iterator[Block]:
    """Yield runs of non-blank lines as (1-based line number, line) pairs."""
    block: Block = []
    for number, line in enumerate(lines, start=1):
        if is_blank(line):
            if block:
                yield block
            block = []
        else:
            block.append((number, line))
    if block:
        yield block


def block_record(block: Block) -> str:
    """Return a block's lines joined with LF, as stored in a Reject."""
    return "\n".join(line for _, line in block)


def sniff_conll_format(lines: list[str]) -> str:
    """Return SENTIMIX when the first non-blank line's first field is ``meta``, else LINCE."""
    for line in lines:
        if not is_blank(line):
            return SENTIMIX if line.split("\t")[0].strip() == HEADER_KEYWORD else LINCE
    return SENTIMIX


def count_tags(lines: list[str]) -> Counter[str]:
    """Count the second field of every two-field line, to choose a tag map."""
    tags: Counter[str] = Counter()
    for line in lines:
        fields = line.split("\t")
        if len(fields) == 2 and fields[1].strip():
            tags[fields[1].strip()] += 1
    return tags


def read_conll_file(path: Path, fmt: str, options: ReadOptions) -> TweetCollector:
    """Read a SentiMix or LinCE file (``fmt`` is SENTIMIX, LINCE or "conll" to sniff)."""
    lines = split_lines(read_text(path))
    if fmt == "conll":
        fmt = sniff_conll_format(lines)
    collector = open_collector(
        str(path),
        fmt=fmt,
        id_prefix=path.stem,
        seen_tags=count_tags(lines),
        options=options,
    )
    if fmt == SENTIMIX:
        read_sentimix_lines(lines, collector)
    else:
        read_lince_lines(lines, collector, path.with_suffix(LABEL_FILE_SUFFIX))
    return collector


def _is_sentimix_header(fields: list[str], collector: TweetCollector) -> bool:
    # Only a block's first line can be a header. `meta<TAB>lang2` there is
    # still a stray token line (the Spanish word "meta"), not a header that
    # lacks its label.
    if fields[0].strip() != HEADER_KEYWORD:
        return False
    return not (len(fields) == 2 and fields[1].strip() in collector.tag_set.mapping)


def read_sentimix_lines(lines: list[str], collector: TweetCollector) -> None:
    """Collect the tweets of a SentiMix file.

    A header is the first line of a block and has the fields ``meta``, ID and
    LABEL. A ``meta`` line anywhere else is a token line, so the Spanish word
    "meta" tagged ``lang2`` inside a tweet stays a token.
    """
    for block in iter_blocks(lines):
        header_line, header = block[0]
        fields = header.split("\t")
        if not _is_sentimix_header(fields, collector):
            collector.reject_lines(
                header_line,
                errors.MALFORMED_LINE,
                f"token line {header!r} outside a tweet; expected a {HEADER_FORMAT} header after a blank line",
                block_record(block),
            )
            continue

        draft = collector.start_tweet(header_line, block_record(block))
        if len(fields) == 3:
            collector.set_id(draft, fields[1], header_line)
            collector.set_label(draft, fields[2], header_line)
        elif len(fields) == 2:
            collector.fail(
                draft, header_line, errors.MISSING_LABEL, f"header {header!r} has no label; expected {HEADER_FORMAT}"
            )
        else:
            collector.fail(
                draft,
                header_line,
                errors.MALFORMED_LINE,
                f"header {header!r} has {len(fields)} fields; expected {HEADER_FORMAT}",
            )

        for number, line in block[1:]:
            if draft.failure is not None:
                break
            _add_token_line(collector, draft, number, line)
        collector.finish(draft)


def _add_token_line(collector: TweetCollector, draft: TweetDraft, number: int, line: str) -> None:
    fields = line.split("\t")
    if len(fields) == 2:
        collector.add_token(draft, fields[0], fields[1], number, line)
        return
    hint = ""
    if fields[0].strip() == HEADER_KEYWORD:
        hint = "; a header must follow a blank line"
    collector.fail(
        draft,
        number,
        errors.MALFORMED_LINE,
        f"token line {line!r} has {len(fields)} fields; expected TOKEN<TAB>TAG{hint}",
    )


@dataclass
class LinceTweet:
    """A LinCE block split into its comment keys and token lines."""

    line: int
    record: str
    keys: dict[str, tuple[int, str]]
    token_lines: Block


def _split_lince_block(block: Block) -> LinceTweet | None:
    keys: dict[str, tuple[int, str]] = {}
    index = 0
    while index < len(block):
        number, line = block[index]
        if "\t" in line or not line.lstrip().startswith("#"):
            break
        match = _COMMENT_PATTERN.match(line.strip())
        if match:
            keys.setdefault(match.group(1).lower(), (number, match.group(2)))
        index += 1
    token_lines = block[index:]
    is_tweet_comment = any(key in keys for key in (*LABEL_KEYS, *ID_KEYS))
    if not token_lines and not is_tweet_comment:
        # A block of other comments, such as a file header, is no tweet.
        return None
    return LinceTweet(block[0][0], block_record(block), keys, token_lines)


def _read_label_file(path: Path) -> list[str]:
    lines = split_lines(read_text(path))
    while lines and is_blank(lines[-1]):
        lines.pop()
    return lines


def _first_key(keys: dict[str, tuple[int, str]], names: tuple[str, ...]) -> tuple[int, str] | None:
    for name in names:
        if name in keys:
            return keys[name]
    return None


def read_lince_lines(lines: list[str], collector: TweetCollector, label_path: Path) -> None:
    """Collect the tweets of a LinCE-style file, with labels from ``label_path`` when it exists."""
    tweets = [tweet for block in iter_blocks(lines) if (tweet := _split_lince_block(block)) is not None]
    labels = _read_label_file(label_path) if label_path.is_file() else None
    if labels is not None and len(labels) != len(tweets):
        raise DataError.at(
            label_path,
            f"has {len(labels)} labels but {collector.source} has {len(tweets)} tweets; "
            "expected one label per line, in tweet order",
        )

    for position, tweet in enumerate(tweets, start=1):
        draft = collector.start_tweet(tweet.line, tweet.record)

        id_entry = _first_key(tweet.keys, ID_KEYS)
        if id_entry is None:
            collector.set_id(draft, position, tweet.line)
        else:
            collector.set_id(draft, id_entry[1], id_entry[0])

        label_entry = _first_key(tweet.keys, LABEL_KEYS)
        if labels is not None:
            collector.set_label(draft, labels[position - 1], position, path=label_path)
            if label_entry is not None and draft.label is not None:
                _check_label_comment(collector, draft, label_entry, labels[position - 1], label_path)
        elif label_entry is not None:
            collector.set_label(draft, label_entry[1], label_entry[0])
        else:
            collector.fail(
                draft,
                tweet.line,
                errors.MISSING_LABEL,
                f"tweet has no '# label = ...' comment and there is no label file {label_path.name}",
            )

        for number, line in tweet.token_lines:
            if draft.failure is not None:
                break
            _add_token_line(collector, draft, number, line)
        collector.finish(draft)


def _check_label_comment(
    collector: TweetCollector,
    draft: TweetDraft,
    label_entry: tuple[int, str],
    file_label: str,
    label_path: Path,
) -> None:
    comment_label, _, _ = parse_label(label_entry[1])
    if comment_label != draft.label:
        collector.fail(
            draft,
            label_entry[0],
            errors.INVALID_LABEL,
            f"label comment {label_entry[1]!r} disagrees with {file_label!r} in {label_path.name}",
        )
