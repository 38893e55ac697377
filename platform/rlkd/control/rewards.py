"""Reward designs: how much better a probe left the student than the snapshot it started from.

Each design maps (metrics before, metrics after) to one float. Metrics are
the flat `<metric>/<scope>` dictionaries that the workers report on the
fixed reward slice of dev data.

`f1_metric` picks hard macro-F1 (`macro_f1`, argmax predictions) or soft
macro-F1 (`soft_macro_f1`, predicted probabilities counted as fractional
hits). Soft is the default. A probe of a few steps rarely flips enough
argmax predictions on a few hundred tweets to change hard F1, and then the
whole group is tied.
"""

from __future__ import annotations

import math
from typing import Callable

from rlkd.constants import LANGS

F1_METRICS = ("soft_macro_f1", "macro_f1")

RewardDesign = Callable[[dict[str, float], dict[str, float], str], float]


def _worst_language(metrics: dict[str, float], f1_metric: str) -> float:
    values = [metrics.get(f"{f1_metric}/{lang}", math.nan) for lang in LANGS]
    values = [value for value in values if not math.isnan(value)]
    return min(values) if values else math.nan


def macro_f1_gain(before: dict[str, float], after: dict[str, float], f1_metric: str = "soft_macro_f1") -> float:
    """Gain in macro-F1 over all languages pooled."""
    return after[f"{f1_metric}/all"] - before[f"{f1_metric}/all"]


def worst_lang_f1_gain(before: dict[str, float], after: dict[str, float], f1_metric: str = "soft_macro_f1") -> float:
    """Gain in the lowest per-language macro-F1 (languages without examples are left out)."""
    return _worst_language(after, f1_metric) - _worst_language(before, f1_metric)


REWARD_DESIGNS: dict[str, RewardDesign] = {
    "macro_f1_gain": macro_f1_gain,
    "worst_lang_f1_gain": worst_lang_f1_gain,
}


def get_reward_design(name: str) -> RewardDesign:
    if name not in REWARD_DESIGNS:
        raise ValueError(f"unknown reward design {name!r} (known: {', '.join(REWARD_DESIGNS)})")
    return REWARD_DESIGNS[name]
