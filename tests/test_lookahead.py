"""The lookahead estimator predicts, to first order, what one training step with a candidate weighting does to dev loss."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from rlkd.control.rewards import LOOKAHEAD_METRIC
from rlkd.train.encoding import collate
from rlkd.train.lookahead import LookaheadEstimator
from rlkd.train.probes import choose_probe_data
from rlkd.train.step import LossSettings, compute_loss
from test_probes import split

SETTINGS = LossSettings("forward_kl", 2.0, 0.5, 0.5)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3,
    ))


@pytest.fixture
def setup():
    model = _model()
    train, dev = split(64, 1), split(48, 2)
    data = choose_probe_data(train, dev, probe_steps=2, batch_size=16, reward_examples=48, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    estimator = LookaheadEstimator(model, optimizer, data, train, dev, SETTINGS, pad_token_id=0, probe_steps=1)
    return model, train, dev, data, estimator


def _dev_loss_by_language(model, dev, indices) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        batch = collate(dev, indices, 0)
        per_example = F.cross_entropy(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                      batch["labels"], reduction="none")
    return np.array([per_example[batch["language_index"] == k].mean().item() for k in range(3)])


def _actual_change(model, train, dev, data, candidate, scale) -> np.ndarray:
    """Take one step theta -= scale(original, gradient) on the probe examples; return the dev CE change per language."""
    before = _dev_loss_by_language(model, dev, data.reward_indices)
    stepped = copy.deepcopy(model)
    stepped.eval()
    loss = compute_loss(stepped, collate(train, np.concatenate(data.probe_batches), 0), torch.tensor(candidate), SETTINGS)
    stepped.zero_grad()
    loss.total.backward()
    with torch.no_grad():
        for original, parameter in zip(model.parameters(), stepped.parameters()):
            if parameter.grad is not None:
                parameter -= scale(original, parameter.grad)
    return _dev_loss_by_language(stepped, dev, data.reward_indices) - before


def _predicted_change(outcome, index: int = 0) -> np.ndarray:
    return np.array([
        outcome["before"][f"{LOOKAHEAD_METRIC}/{lang}"] - outcome["after"][index][f"{LOOKAHEAD_METRIC}/{lang}"]
        for lang in ("en", "es", "hi")
    ])


def test_prediction_matches_one_sgd_step(setup):
    model, train, dev, data, estimator = setup
    candidate = [2.0, 0.5, 0.5]

    outcome = estimator.outcome([candidate, [1.0, 1.0, 1.0]])

    actual_change = _actual_change(model, train, dev, data, candidate, lambda original, gradient: 1e-3 * gradient)
    before = _dev_loss_by_language(model, dev, data.reward_indices)
    reported = -np.array([outcome["before"][f"{LOOKAHEAD_METRIC}/{lang}"] for lang in ("en", "es", "hi")])
    assert np.allclose(reported, before, atol=1e-5)
    assert np.all(np.abs(actual_change) > 0)
    assert _predicted_change(outcome) == pytest.approx(actual_change, rel=0.05, abs=1e-7)


def test_group_cost_is_fixed(setup):
    *_, estimator = setup
    rng = np.random.default_rng(0)
    candidates = (3 * rng.dirichlet(np.ones(3), size=64)).tolist()

    outcome = estimator.outcome(candidates)

    assert len(outcome["after"]) == 64
    assert estimator.backward_passes == 2 * 3 + 1
    assert outcome["metric"] == LOOKAHEAD_METRIC
    assert outcome["cost_examples"] == pytest.approx((4 * 32 + 48) / 64)
    scores = [after[f"{LOOKAHEAD_METRIC}/all"] for after in outcome["after"]]
    assert np.all(np.isfinite(scores))
    assert np.std(scores) > 0


def test_prediction_is_linear_in_the_weights(setup):
    *_, estimator = setup
    a, b = np.array([2.0, 0.5, 0.5]), np.array([0.5, 0.5, 2.0])

    outcome = estimator.outcome([a.tolist(), b.tolist(), ((a + b) / 2).tolist()])

    key = f"{LOOKAHEAD_METRIC}/all"
    first, second, middle = (after[key] for after in outcome["after"])
    assert middle == pytest.approx((first + second) / 2, rel=1e-6)


def test_prediction_matches_an_adam_scaled_step():
    model = _model()
    train, dev = split(64, 1), split(48, 2)
    data = choose_probe_data(train, dev, probe_steps=2, batch_size=16, reward_examples=48, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    for start in range(0, 48, 16):
        batch = collate(train, np.arange(start, start + 16), 0)
        optimizer.zero_grad()
        compute_loss(model, batch, torch.ones(3), SETTINGS).total.backward()
        optimizer.step()
    # A smaller step for the check keeps the Adam-scaled update in the first-order regime.
    optimizer.param_groups[0]["lr"] = 1e-5
    estimator = LookaheadEstimator(model, optimizer, data, train, dev, SETTINGS, pad_token_id=0, probe_steps=1)
    candidate = [0.5, 2.0, 0.5]

    outcome = estimator.outcome([candidate])

    def adam_scaled(original, gradient):
        state = optimizer.state[original]
        v_hat = state["exp_avg_sq"] / (1 - 0.999 ** float(state["step"]))
        return 1e-5 * gradient / (v_hat.sqrt() + 1e-8)

    actual_change = _actual_change(model, train, dev, data, candidate, adam_scaled)
    assert np.all(np.abs(actual_change) > 0)
    assert _predicted_change(outcome) == pytest.approx(actual_change, rel=0.05, abs=1e-8)
