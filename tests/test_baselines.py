import math

import numpy as np
import pytest

from rlkd.baselines import GroupDRO, language_shares, temperature_weights


def test_language_shares_are_mean_proportions():
    proportions = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]])

    assert language_shares(proportions).tolist() == pytest.approx([0.5, 0.125, 0.375])


def test_temperature_one_is_uniform_kd():
    assert temperature_weights(np.array([0.6, 0.3, 0.1]), 1.0) == pytest.approx([1.0, 1.0, 1.0])


def test_temperature_favours_small_languages():
    shares = np.array([0.6, 0.3, 0.1])

    weights = np.asarray(temperature_weights(shares, 5.0))

    assert weights[2] > weights[1] > 1.0 > weights[0]
    assert (shares * weights).sum() == pytest.approx(1.0)
    target = shares ** 0.2 / (shares ** 0.2).sum()
    assert shares * weights == pytest.approx(target)


def test_temperature_gives_an_absent_language_weight_one():
    weights = temperature_weights(np.array([0.75, 0.25, 0.0]), 2.0)

    assert weights[2] == 1.0
    assert all(math.isfinite(weight) for weight in weights)


def test_dro_raises_highest_loss_weight():
    dro = GroupDRO(step_size=0.5)
    assert dro.weights() == pytest.approx([1.0, 1.0, 1.0])

    weights = dro.update([0.5, 0.5, 1.5])

    expected = np.exp([0.25, 0.25, 0.75])
    assert weights == pytest.approx((3 * expected / expected.sum()).tolist())
    assert sum(weights) == pytest.approx(3.0)


def test_dro_nan_loss_keeps_q():
    dro = GroupDRO(step_size=1.0)

    for _ in range(2000):
        weights = dro.update([50.0, math.nan, 0.0])

    assert all(math.isfinite(weight) for weight in weights)
    assert weights[0] == pytest.approx(3.0)
    assert weights[1] == pytest.approx(0.0, abs=1e-12)
