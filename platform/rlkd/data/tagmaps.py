"""Corpus language tags mapped to rlkd's ISO codes, and the choice of map for a file."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rlkd.constants import LANGS, OTHER
from rlkd.data.errors import DataError

# Tag sets of the SemEval-2020 Task 9 (SentiMix) release, keyed by corpus name.
# The corpus name is also the pair name of every tweet read with that map.
SENTIMIX_TAG_MAPS: dict[str, dict[str, str]] = {
    "spanglish": {
        "lang1": "en",
        "lang2": "es",
        "ne": OTHER,
        "other": OTHER,
        "ambiguous": OTHER,
        "mixed": OTHER,
        "fw": OTHER,
        "unk": OTHER,
    },
    "hinglish": {
        "Eng": "en",
        "Hin": "hi",
        "O": OTHER,
        "EMT": OTHER,
    },
}

# Tags that are already rlkd codes, as in user tables with a `langs` column.
# This map names no pair.
ISO_TAG_MAP_NAME = "iso"
ISO_TAG_MAP: dict[str, str] = {**{lang: lang for lang in LANGS}, OTHER: OTHER}

_PAIR_CODE_PATTERN = re.compile(r"^([a-z]{2})[-_+]([a-z]{2})$")


@dataclass(frozen=True)
class TagSet:
    """The tag map chosen for one file; ``name`` is its pair name, or None when it names no pair."""

    name: str | None
    mapping: Mapping[str, str]
    chosen_by: str

    def describe(self) -> str:
        """Return the map's name and how it was chosen, for error messages."""
        name = f"{self.name!r}" if self.name else "without a pair name"
        if self.mapping is ISO_TAG_MAP:
            name = f"{ISO_TAG_MAP_NAME!r} (rlkd codes)"
        return f"tag map {name}, chosen by {self.chosen_by}"


def validate_tag_map(name: str, mapping: Mapping[str, str]) -> None:
    """Raise ValueError unless every tag maps to a code in LANGS or to OTHER."""
    allowed = (*LANGS, OTHER)
    for tag, code in mapping.items():
        if code not in allowed:
            raise ValueError(
                f"tag map {name!r} maps tag {tag!r} to {code!r}; "
                f"expected one of {', '.join(allowed)}"
            )


def merge_tag_maps(tag_maps: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Return the SentiMix maps with ``tag_maps`` applied.

    A name that is already a SentiMix corpus gets the given tags added or
    remapped on top of the built-in map. Any other name adds a new map, and
    that name becomes the pair name of tweets read with it. Raises ValueError
    for a code outside LANGS and OTHER.
    """
    merged = {name: dict(mapping) for name, mapping in SENTIMIX_TAG_MAPS.items()}
    for name, mapping in (tag_maps or {}).items():
        validate_tag_map(name, mapping)
        merged[name] = {**merged.get(name, {}), **mapping}
    return merged


def choose_tag_map(
    path: str | Path,
    seen_tags: Counter[str],
    maps: Mapping[str, Mapping[str, str]],
    *,
    tag_map: Mapping[str, str] | None = None,
    pair: str | None = None,
) -> TagSet:
    """Choose the tag map for the file at ``path``.

    The first rule that applies wins:

    1. ``tag_map``, when given.
    2. The ISO map, when every tag in ``seen_tags`` is already an rlkd code.
    3. The map named by ``pair``.
    4. A map whose name occurs in the file name.
    5. The map (SentiMix or ISO) that covers the most tag occurrences in
       ``seen_tags``.

    The file name wins over the tags because LinCE-style files tag every
    pair's non-English language as ``lang2``, so a Hinglish file would
    otherwise read as Spanglish. The returned name is ``pair`` for rule 1.
    Otherwise it is the name of the map that rule 3 or 4 finds, even when
    rule 2 returns the ISO map, or else the name of the rule 5 map (None for
    ISO). Raises DataError when tags were seen and no map contains any of
    them.
    """
    if tag_map is not None:
        validate_tag_map("tag_map", tag_map)
        return TagSet(pair, tag_map, "the tag_map argument")

    named: TagSet | None = None
    if pair is not None and pair in maps:
        named = TagSet(pair, maps[pair], f"the pair {pair!r}")
    else:
        file_name = Path(path).name.lower()
        for name in sorted(maps, key=len, reverse=True):
            if name.lower() in file_name:
                named = TagSet(name, maps[name], "the file name")
                break

    if seen_tags and all(tag in ISO_TAG_MAP for tag in seen_tags):
        return TagSet(named.name if named else None, ISO_TAG_MAP, "the rlkd codes in the file")
    if named is not None:
        return named
    if not seen_tags:
        return TagSet(None, ISO_TAG_MAP, "the default for untagged files")

    candidates = [(ISO_TAG_MAP_NAME, ISO_TAG_MAP), *sorted(maps.items())]
    best_name, best_mapping, best_covered = None, None, 0
    for name, mapping in candidates:
        covered = sum(count for tag, count in seen_tags.items() if tag in mapping)
        if covered > best_covered:
            best_name, best_mapping, best_covered = name, mapping, covered
    if best_mapping is None:
        examples = ", ".join(repr(tag) for tag, _ in seen_tags.most_common(5))
        raise DataError.at(
            path,
            f"no known tag set contains any of its language tags ({examples}); "
            "add a map for them in the config field data.tag_maps",
        )
    pair_name = None if best_name == ISO_TAG_MAP_NAME else best_name
    return TagSet(pair_name, best_mapping, "the tags in the file")


def pair_languages(pair: str | None, maps: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """Return the languages of a pair, in LANGS order.

    A tag map's name gives the codes its tags map to. A name like ``en-es``
    or ``hi_en`` gives those two codes. Any other name, or None, gives all of
    LANGS, because the pair's languages are unknown.
    """
    if pair in maps:
        codes = set(maps[pair].values())
        languages = tuple(lang for lang in LANGS if lang in codes)
        if languages:
            return languages
    match = _PAIR_CODE_PATTERN.match(pair or "")
    if match and all(code in LANGS for code in match.groups()):
        return tuple(lang for lang in LANGS if lang in match.groups())
    return LANGS
