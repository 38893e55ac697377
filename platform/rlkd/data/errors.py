"""The error raised for unreadable corpora and the reject reasons the readers record."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path


class DataError(ValueError):
    """A corpus file or folder that cannot be read as requested.

    The message is one line: ``FILE:LINE: problem`` when a line is known, else
    ``FILE: problem``. ``path``, ``line`` and ``reason`` repeat its parts for
    callers that branch on them; they are None when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.reason = reason

    @classmethod
    def at(
        cls,
        path: str | Path,
        problem: str,
        *,
        line: int | None = None,
        reason: str | None = None,
    ) -> DataError:
        """Build the error for ``problem`` in ``path``, at ``line`` when given."""
        location = f"{path}:{line}" if line is not None else f"{path}"
        return cls(f"{location}: {problem}", path=str(path), line=line, reason=reason)


# Reasons that drop a tweet (lenient mode) or raise (strict mode).
MALFORMED_LINE = "malformed_line"
INVALID_LABEL = "invalid_label"
MISSING_LABEL = "missing_label"
MISSING_ID = "missing_id"
DUPLICATE_ID = "duplicate_id"
EMPTY_TWEET = "empty_tweet"
MISALIGNED_LANGS = "misaligned_langs"

# Reasons for a token that was repaired while its tweet was kept. Strict mode
# raises on an unknown tag, and lenient mode repairs it. Empty tokens and
# missing tags are repaired in both modes. The released SentiMix Hinglish
# files contain 32 whitespace-only tokens (such as a lone U+00A0) and one
# token without a tag, and they must still load in strict mode.
UNKNOWN_TAG = "unknown_tag"
EMPTY_TOKEN = "empty_token"
MISSING_TAG = "missing_tag"

REPAIR_REASONS: frozenset[str] = frozenset({UNKNOWN_TAG, EMPTY_TOKEN, MISSING_TAG})

# Repairs that lose no language information, so logs report them at INFO
# level. Every other reason is logged as a warning.
MINOR_REASONS: frozenset[str] = frozenset({EMPTY_TOKEN, MISSING_TAG})


def log_level_for(reasons: Iterable[str]) -> int:
    """Return logging.WARNING when any reason is not in MINOR_REASONS, else logging.INFO."""
    return logging.INFO if set(reasons) <= MINOR_REASONS else logging.WARNING
