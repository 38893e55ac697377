"""Per-tweet features (text, language proportions, dominant language, CMI) and the table schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from rlkd.constants import LANGS, OTHER, PROPORTION_COLUMNS

FRAME_COLUMNS: tuple[str, ...] = (
    "id",
    "text",
    "label",
    "pair",
    "tokens",
    "langs",
    *PROPORTION_COLUMNS,
    "dominant_lang",
    "cmi",
    "source_file",
    "line",
)
STRING_COLUMNS: tuple[str, ...] = ("id", "text", "pair", "dominant_lang", "source_file")
LIST_COLUMNS: tuple[str, ...] = ("tokens", "langs")
INT_COLUMNS: tuple[str, ...] = ("label", "line")
FLOAT_COLUMNS: tuple[str, ...] = (*PROPORTION_COLUMNS, "cmi")

# Parquet schema of the cached tables; it also keeps the list columns typed
# when a table is empty.
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("label", pa.int64()),
        ("pair", pa.string()),
        ("tokens", pa.list_(pa.string())),
        ("langs", pa.list_(pa.string())),
        *[(column, pa.float64()) for column in PROPORTION_COLUMNS],
        ("dominant_lang", pa.string()),
        ("cmi", pa.float64()),
        ("source_file", pa.string()),
        ("line", pa.int64()),
    ]
)


def join_text(tokens: Sequence[str]) -> str:
    """Join tokens with single spaces, gluing a lone ``@`` to the next token.

    The SentiMix files split a user mention over two tokens (``@`` then the
    name), so ``["@", "user", "hi"]`` becomes ``"@user hi"``.
    """
    parts: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "@" and index + 1 < len(tokens):
            parts.append("@" + tokens[index + 1])
            index += 2
        else:
            parts.append(token)
            index += 1
    return " ".join(parts)


def language_counts(langs: Sequence[str]) -> Counter[str]:
    """Count the tokens of each language in LANGS, leaving out OTHER."""
    return Counter(lang for lang in langs if lang != OTHER)


def language_proportions(langs: Sequence[str], pair_langs: Sequence[str]) -> dict[str, float]:
    """Return each LANGS code's share of the language tokens, summing to 1.

    Tokens tagged OTHER are left out. A tweet with no language token is split
    evenly over ``pair_langs``.
    """
    counts = language_counts(langs)
    total = sum(counts.values())
    if total == 0:
        return {lang: (1.0 / len(pair_langs) if lang in pair_langs else 0.0) for lang in LANGS}
    return {lang: counts[lang] / total for lang in LANGS}


def dominant_language(proportions: dict[str, float], pair_langs: Sequence[str]) -> str:
    """Return the language with the largest proportion.

    Ties go to a non-English language of the pair, then to any other
    non-English language, then to English, each in LANGS order. Proportions
    of equal token counts are equal floats, so the comparison is exact.
    """
    largest = max(proportions.values())
    tied = [lang for lang in LANGS if proportions[lang] == largest]
    return min(tied, key=lambda lang: (lang == "en", lang not in pair_langs, LANGS.index(lang)))


def code_mixing_index(langs: Sequence[str]) -> float:
    """Return the code-mixing index of Das and Gambäck (2014) on the 0..100 scale.

    CMI = 100 * (1 - max_lang_count / (n - u)), where n is the token count and
    u the number of OTHER tokens. It is 0 when every token is OTHER.
    """
    counts = language_counts(langs)
    language_tokens = sum(counts.values())
    if language_tokens == 0:
        return 0.0
    return 100.0 * (1.0 - max(counts.values()) / language_tokens)


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly FRAME_COLUMNS, in order, with their dtypes and a fresh index.

    String columns get pandas' default string dtype, list columns contain
    Python lists (Parquet gives back arrays), so a table read from the cache
    compares equal to the one that was written.
    """
    columns: dict[str, pd.Series] = {}
    for column in FRAME_COLUMNS:
        values = frame[column].reset_index(drop=True)
        if column in STRING_COLUMNS:
            columns[column] = values.astype(object).astype("str")
        elif column in LIST_COLUMNS:
            columns[column] = pd.Series([list(value) for value in values], dtype=object)
        elif column in INT_COLUMNS:
            columns[column] = values.astype("int64")
        else:
            columns[column] = values.astype("float64")
    return pd.DataFrame(columns)


def empty_frame() -> pd.DataFrame:
    """Return a table with FRAME_COLUMNS and no rows."""
    return normalize_frame(pd.DataFrame({column: pd.Series([], dtype=object) for column in FRAME_COLUMNS}))
