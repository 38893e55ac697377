"""Reader results: the tweet table, the rejected records and the per-file counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Reject:
    """A record that a reader skipped, or a token line that it repaired.

    ``reason`` is a short stable key from ``rlkd.data.errors``. For the reasons
    in ``REPAIR_REASONS`` (``unknown_tag``, ``empty_token``, ``missing_tag``)
    the tweet was kept and only the token was changed. For every other reason
    the record was dropped. ``line`` is the 1-based line of the problem, or the
    row number for Hugging Face datasets. ``record`` is the raw text of the
    dropped record or of the repaired line.
    """

    file: str
    line: int
    reason: str
    record: str


@dataclass
class FileCounts:
    """Per-file tallies that a reader checks before it returns.

    ``tweets`` counts the tweets seen: SentiMix headers, LinCE blocks, or
    table rows. Every tweet is either kept or rejected, so
    ``kept + rejected == tweets``. ``reasons`` counts the Reject entries by
    reason, including repairs and stray lines that belonged to no tweet, so its
    total can differ from ``rejected``.
    """

    format: str
    pair: str | None = None
    tweets: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def check(self, source: str) -> None:
        """Raise RuntimeError when kept and rejected tweets do not add up to tweets seen."""
        if self.kept + self.rejected != self.tweets:
            raise RuntimeError(
                f"{source}: reader bug: {self.kept} kept + {self.rejected} rejected tweets "
                f"!= {self.tweets} tweets seen"
            )


@dataclass
class ReadResult:
    """The tweet table of one or more files, with their rejects and counts keyed by source path."""

    frame: pd.DataFrame
    rejects: list[Reject]
    counts: dict[str, FileCounts]

    def reject_counts(self) -> Counter[str]:
        """Count the Reject entries by reason over all files."""
        return Counter(reject.reason for reject in self.rejects)
