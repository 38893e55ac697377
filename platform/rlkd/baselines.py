"""Rule-based KD weightings that the RL controller must beat: temperature-scaled data shares and Group DRO.

Both return `kd_weight`, one factor per language in LANGS order. An
example's KD term is scaled by `sum_l p_l(x) * kd_weight[l]`, where p(x)
contains the example's language proportions. Uniform KD is `kd_weight = 1`.
"""

from __future__ import annotations

import math

import numpy as np

from rlkd.constants import LANGS


def language_shares(lang_proportions: np.ndarray) -> np.ndarray:
    """Return each language's share of the KD term under uniform weights: its mean proportion over the examples."""
    totals = np.asarray(lang_proportions, dtype=np.float64).sum(axis=0)
    if totals.sum() <= 0:
        raise ValueError("no example carries a language proportion, so language shares are undefined")
    return totals / totals.sum()


def temperature_weights(shares: np.ndarray, tau: float) -> list[float]:
    """Weights that give language l the share `s_l^(1/tau) / sum_k s_k^(1/tau)` of the KD term.

    This is temperature sampling (Arivazhagan et al., 2019) moved from the
    sampler into the loss: `kd_weight[l] = target_l / s_l`. The total KD
    mass, `sum_l s_l * kd_weight[l]`, stays 1 as with uniform KD. tau = 1
    gives uniform weights, and a larger tau shifts weight to the smaller
    languages. A language with no data gets weight 1, which never applies.
    """
    shares = np.asarray(shares, dtype=np.float64)
    present = shares > 0
    target = np.zeros_like(shares)
    target[present] = shares[present] ** (1.0 / tau)
    target /= target.sum()
    weights = np.ones_like(shares)
    weights[present] = target[present] / shares[present]
    return weights.tolist()


class GroupDRO:
    """Online Group DRO weights (Sagawa et al., 2020): exponentiated gradient on per-language dev loss.

    After each dev evaluation, `q_l <- q_l * exp(eta * loss_l)`, normalised
    to sum to 1. The applied weights are `kd_weight = L * q`, so they
    average 1 over languages. A language whose loss is NaN (no dev examples)
    keeps its q. Log-space keeps the update finite over long runs.
    """

    def __init__(self, step_size: float, num_langs: int = len(LANGS)):
        self.step_size = step_size
        self.log_q = np.full(num_langs, -math.log(num_langs))

    def update(self, losses: list[float]) -> list[float]:
        losses = np.asarray(losses, dtype=np.float64)
        step = np.where(np.isfinite(losses), losses, 0.0)
        self.log_q = self.log_q + self.step_size * step
        self.log_q -= np.logaddexp.reduce(self.log_q)
        return self.weights()

    def weights(self) -> list[float]:
        return (len(self.log_q) * np.exp(self.log_q)).tolist()
