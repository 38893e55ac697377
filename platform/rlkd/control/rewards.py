"""Reward designs: how much better a candidate weighting leaves the student than the state it started from.

Each design maps (scores before, scores after, settings) to one float. Scores
are flat `<metric>/<scope>` dictionaries; `RewardSettings.metric` names the
metric to read, higher being better:

- with the `probe` estimator, a measured F1 on the fixed reward slice of dev
  data: hard macro-F1 (`macro_f1`, argmax predictions) or soft macro-F1
  (`soft_macro_f1`, probabilities counted as fractional hits, the default;
  a probe of a few steps rarely flips enough argmax predictions on a few
  hundred tweets to change hard F1, and then the whole group is tied);
- with the `lookahead` estimator, the predicted negative dev cross-entropy
  (`neg_ce_loss`), so every "F1 gain" below reads as a predicted decrease
  of dev loss.

A design may return NaN, for example when no language has dev examples.
The controller reports such a reward and leaves it out of the group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rlkd.constants import LANGS

F1_METRICS = ("soft_macro_f1", "macro_f1")
LOOKAHEAD_METRIC = "neg_ce_loss"


@dataclass(frozen=True)
class RewardSettings:
    metric: str = "soft_macro_f1"
    balanced_lambda: float = 1.0
    cost_coefficient: float = 0.01  # reward units per 1,000 examples of compute
    cost_kexamples: float = 0.0  # compute spent on one candidate, in 1,000 examples


RewardDesign = Callable[[dict[str, float], dict[str, float], RewardSettings], float]


def _per_language(scores: dict[str, float], metric: str) -> np.ndarray:
    return np.asarray([scores.get(f"{metric}/{lang}", math.nan) for lang in LANGS], dtype=np.float64)


def _worst(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.min()) if finite.size else math.nan


def macro_f1_gain(before: dict[str, float], after: dict[str, float], settings: RewardSettings) -> float:
    """Gain over all languages pooled."""
    key = f"{settings.metric}/all"
    return after.get(key, math.nan) - before.get(key, math.nan)


def worst_lang_f1_gain(before: dict[str, float], after: dict[str, float], settings: RewardSettings) -> float:
    """Gain in the lowest per-language score (languages without examples are left out)."""
    return _worst(_per_language(after, settings.metric)) - _worst(_per_language(before, settings.metric))


def balanced(before: dict[str, float], after: dict[str, float], settings: RewardSettings) -> float:
    """Mean per-language gain plus lambda times the worst-language gain."""
    gains = _per_language(after, settings.metric) - _per_language(before, settings.metric)
    finite = gains[~np.isnan(gains)]
    mean_gain = float(finite.mean()) if finite.size else math.nan
    return mean_gain + settings.balanced_lambda * worst_lang_f1_gain(before, after, settings)


def gain_minus_cost(before: dict[str, float], after: dict[str, float], settings: RewardSettings) -> float:
    """Pooled gain minus cost_coefficient per 1,000 examples of probe steps and teacher forward passes.

    Every candidate of one group costs the same, so the cost cancels in
    group-relative advantages and leaves the policy update unchanged. It
    shifts the reward level, which is what a sweep compares across probe
    sizes, group sizes and estimators.
    """
    return macro_f1_gain(before, after, settings) - settings.cost_coefficient * settings.cost_kexamples


REWARD_DESIGNS: dict[str, RewardDesign] = {
    "macro_f1_gain": macro_f1_gain,
    "worst_lang_f1_gain": worst_lang_f1_gain,
    "balanced": balanced,
    "gain_minus_cost": gain_minus_cost,
}


def get_reward_design(name: str) -> RewardDesign:
    if name not in REWARD_DESIGNS:
        raise ValueError(f"unknown reward design {name!r} (known: {', '.join(REWARD_DESIGNS)})")
    return REWARD_DESIGNS[name]
