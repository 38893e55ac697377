"""Collect one file's tweets into table columns, applying the strict or lenient mode."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

import pandas as pd

from rlkd.constants import LABELS, LANGS, OTHER, PROPORTION_COLUMNS
from rlkd.data import errors
from rlkd.data.errors import DataError
from rlkd.data.features import (
    FRAME_COLUMNS,
    code_mixing_index,
    dominant_language,
    join_text,
    language_proportions,
    normalize_frame,
)
from rlkd.data.results import FileCounts, Reject
from rlkd.data.tagmaps import TagSet, choose_tag_map, pair_languages

MODES: tuple[str, ...] = ("strict", "lenient")


def validate_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of MODES."""
    if mode not in MODES:
        raise ValueError(f"invalid mode {mode!r}; expected one of {', '.join(MODES)}")


def parse_label(value: object) -> tuple[int | None, str | None, str | None]:
    """Parse a label into its id, or return (None, reason, problem).

    Accepted: a name from LABELS in any case, or a label id 0..2 as an int or
    a digit string. None, NaN and blank strings are missing labels.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, errors.MISSING_LABEL, "missing label"
    if isinstance(value, Integral) and not isinstance(value, bool):
        if 0 <= int(value) < len(LABELS):
            return int(value), None, None
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None, errors.MISSING_LABEL, "missing label"
        if text.lower() in LABELS:
            return LABELS.index(text.lower()), None, None
        if text.isdigit() and 0 <= int(text) < len(LABELS):
            return int(text), None, None
    expected = ", ".join(LABELS)
    return None, errors.INVALID_LABEL, f"invalid label {value!r}; expected one of {expected} or an id 0..{len(LABELS) - 1}"


@dataclass
class TweetDraft:
    """A tweet being read: its tokens so far, the repairs to report if it is kept, and its first failure."""

    line: int
    record: str
    tweet_id: str | None = None
    label: int | None = None
    tokens: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    repairs: list[Reject] = field(default_factory=list)
    failure: Reject | None = None


class TweetCollector:
    """Accumulates the tweets of one source as table columns.

    In strict mode the first problem raises DataError. In lenient mode a
    tweet with a problem is dropped and recorded as one Reject with the
    reason of its first problem. Token repairs (REPAIR_REASONS) are recorded
    only for tweets that are kept.
    """

    def __init__(
        self,
        source: str,
        *,
        id_prefix: str,
        fmt: str,
        mode: str,
        tag_set: TagSet,
        maps: Mapping[str, Mapping[str, str]],
        default_pair: str,
    ) -> None:
        validate_mode(mode)
        self.source = source
        self.id_prefix = id_prefix
        self.mode = mode
        self.tag_set = tag_set
        self.maps = maps
        self.default_pair = default_pair
        self.counts = FileCounts(format=fmt, pair=default_pair)
        self.rejects: list[Reject] = []
        self._columns: dict[str, list] = {column: [] for column in FRAME_COLUMNS}
        self._ids: set[str] = set()
        self._pair_langs: dict[str, tuple[str, ...]] = {}

    def start_tweet(self, line: int, record: str) -> TweetDraft:
        """Count a tweet seen at ``line`` and return its draft."""
        self.counts.tweets += 1
        return TweetDraft(line=line, record=record)

    def fail(
        self,
        draft: TweetDraft,
        line: int,
        reason: str,
        problem: str,
        *,
        path: str | Path | None = None,
    ) -> None:
        """Raise DataError in strict mode, else mark the draft dropped unless it already is.

        ``path`` names another file, such as a label file, that ``line``
        belongs to. The error names it, and the Reject keeps the tweet's own
        line in the source instead.
        """
        if self.mode == "strict":
            raise DataError.at(path or self.source, problem, line=line, reason=reason)
        if draft.failure is None:
            reject_line = line if path is None else draft.line
            draft.failure = Reject(self.source, reject_line, reason, draft.record)

    def reject_lines(self, line: int, reason: str, problem: str, record: str) -> None:
        """Raise DataError in strict mode, else record lines that belong to no tweet."""
        if self.mode == "strict":
            raise DataError.at(self.source, problem, line=line, reason=reason)
        self.rejects.append(Reject(self.source, line, reason, record))

    def set_label(self, draft: TweetDraft, value: object, line: int, *, path: str | Path | None = None) -> None:
        """Parse and store the tweet's label, or fail the draft."""
        label, reason, problem = parse_label(value)
        if label is None:
            self.fail(draft, line, reason, problem, path=path)
        else:
            draft.label = label

    def set_id(self, draft: TweetDraft, raw_id: object, line: int) -> None:
        """Store the tweet id ``<id_prefix>:<raw_id>``, or fail the draft when it is blank or repeated."""
        text = "" if raw_id is None else str(raw_id).strip()
        if not text:
            self.fail(draft, line, errors.MISSING_ID, "missing tweet id")
            return
        tweet_id = f"{self.id_prefix}:{text}"
        if tweet_id in self._ids:
            self.fail(draft, line, errors.DUPLICATE_ID, f"duplicate tweet id {text!r}")
            return
        draft.tweet_id = tweet_id

    def add_token(self, draft: TweetDraft, token: str, tag: str | None, line: int, raw: str) -> None:
        """Append a token and its mapped language to the draft.

        ``tag`` is None for untagged input, whose tokens are all OTHER. A
        token that is blank after stripping whitespace is dropped, and a
        blank tag becomes OTHER; both are repairs. An unknown tag raises in
        strict mode and becomes OTHER, as a repair, in lenient mode.
        """
        token = token.strip()
        if not token:
            draft.repairs.append(Reject(self.source, line, errors.EMPTY_TOKEN, raw))
            return
        if tag is None:
            lang = OTHER
        else:
            tag = tag.strip()
            if not tag:
                draft.repairs.append(Reject(self.source, line, errors.MISSING_TAG, raw))
                lang = OTHER
            elif tag in self.tag_set.mapping:
                lang = self.tag_set.mapping[tag]
            elif self.mode == "strict":
                raise DataError.at(
                    self.source,
                    f"unknown language tag {tag!r} for {self.tag_set.describe()}; "
                    "add it to a tag map (config field data.tag_maps), "
                    "or read in lenient mode to treat it as 'other'",
                    line=line,
                    reason=errors.UNKNOWN_TAG,
                )
            else:
                draft.repairs.append(Reject(self.source, line, errors.UNKNOWN_TAG, raw))
                lang = OTHER
        draft.tokens.append(token)
        draft.langs.append(lang)

    def finish(self, draft: TweetDraft, pair: str | None = None) -> None:
        """Append the draft as a table row, or count it rejected.

        ``pair`` overrides the source's default pair when it is not blank.
        """
        if draft.failure is None and not draft.tokens:
            self.fail(draft, draft.line, errors.EMPTY_TWEET, "tweet has no tokens")
        if draft.failure is None and draft.label is None:
            self.fail(draft, draft.line, errors.MISSING_LABEL, "missing label")
        if draft.failure is None and draft.tweet_id is None:
            self.fail(draft, draft.line, errors.MISSING_ID, "missing tweet id")
        if draft.failure is not None:
            self.counts.rejected += 1
            self.rejects.append(draft.failure)
            return

        pair_name = pair.strip() if isinstance(pair, str) and pair.strip() else self.default_pair
        pair_langs = self._languages_of(pair_name)
        proportions = language_proportions(draft.langs, pair_langs)
        row = {
            "id": draft.tweet_id,
            "text": join_text(draft.tokens),
            "label": draft.label,
            "pair": pair_name,
            "tokens": draft.tokens,
            "langs": draft.langs,
            **{column: proportions[lang] for lang, column in zip(LANGS, PROPORTION_COLUMNS)},
            "dominant_lang": dominant_language(proportions, pair_langs),
            "cmi": code_mixing_index(draft.langs),
            "source_file": self.source,
            "line": draft.line,
        }
        for column, value in row.items():
            self._columns[column].append(value)
        self._ids.add(draft.tweet_id)
        self.counts.kept += 1
        self.rejects.extend(draft.repairs)

    def frame(self) -> pd.DataFrame:
        """Return the collected rows as a table and check the counts."""
        self.counts.reasons = dict(Counter(reject.reason for reject in self.rejects))
        self.counts.check(self.source)
        return normalize_frame(pd.DataFrame(self._columns))

    def _languages_of(self, pair: str) -> tuple[str, ...]:
        if pair not in self._pair_langs:
            self._pair_langs[pair] = pair_languages(pair, self.maps)
        return self._pair_langs[pair]


@dataclass(frozen=True)
class ReadOptions:
    """Reader arguments shared by every format.

    ``pair`` names the pair of tweets that do not name their own. When
    neither ``pair`` nor the tag map names a pair, ``fallback_pair`` does.
    read_corpus sets it to the folder name when it reads a folder. When it is
    None too, the file stem is the pair name.
    """

    mode: str
    maps: Mapping[str, Mapping[str, str]]
    tag_map: Mapping[str, str] | None = None
    pair: str | None = None
    fallback_pair: str | None = None


def open_collector(
    source: str,
    *,
    fmt: str,
    id_prefix: str,
    seen_tags: Counter[str],
    options: ReadOptions,
    name_path: str | Path | None = None,
) -> TweetCollector:
    """Choose the tag map and default pair for a source and return its collector.

    ``name_path`` is the path whose file name may name a tag map; it defaults
    to ``source``.
    """
    tag_set = choose_tag_map(
        name_path or source,
        seen_tags,
        options.maps,
        tag_map=options.tag_map,
        pair=options.pair,
    )
    default_pair = options.pair or tag_set.name or options.fallback_pair or Path(name_path or source).stem
    return TweetCollector(
        source,
        id_prefix=id_prefix,
        fmt=fmt,
        mode=options.mode,
        tag_set=tag_set,
        maps=options.maps,
        default_pair=default_pair,
    )
