"""Reward designs: how much better a probe left the student than the snapshot it started from.

Each design maps (metrics before, metrics after, probe cost) to one float.
Metrics are the flat `<metric>/<scope>` dictionaries that the workers
report on the fixed reward slice of dev data.
"""

from __future__ import annotations

import math
from typing import Callable

from rlkd.constants import LANGS

RewardDesign = Callable[[dict[str, float], dict[str, float]], float]


def _worst_language_f1(metrics: dict[str, float]) -> float:
    values = [metrics[f"macro_f1/{lang}"] for lang in LANGS if not math.isnan(metrics.get(f"macro_f1/{lang}", math.nan))]
    return min(values) if values else math.nan


def macro_f1_gain(before: dict[str, float], after: dict[str, float]) -> float:
    """Gain in macro-F1 over all languages pooled."""
    return after["macro_f1/all"] - before["macro_f1/all"]


def worst_lang_f1_gain(before: dict[str, float], after: dict[str, float]) -> float:
    """Gain in the lowest per-language macro-F1 (languages without examples are left out)."""
    return _worst_language_f1(after) - _worst_language_f1(before)


REWARD_DESIGNS: dict[str, RewardDesign] = {
    "macro_f1_gain": macro_f1_gain,
    "worst_lang_f1_gain": worst_lang_f1_gain,
}


def get_reward_design(name: str) -> RewardDesign:
    if name not in REWARD_DESIGNS:
        raise ValueError(f"unknown reward design {name!r} (known: {', '.join(REWARD_DESIGNS)})")
    return REWARD_DESIGNS[name]
