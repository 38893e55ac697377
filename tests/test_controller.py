import math

import numpy as np
import pytest
import torch

from rlkd.config import ControllerConfig
from rlkd.control.controller import WeightController
from rlkd.control.grpo import group_advantages
from rlkd.control.policy import STATE_SIZE, encode_state, weights_from_logits
from rlkd.control.rewards import RewardSettings, get_reward_design

METRICS = {"soft_macro_f1/en": 0.6, "soft_macro_f1/es": 0.5, "soft_macro_f1/hi": 0.4, "soft_macro_f1/all": 0.5,
           "macro_f1/en": 0.6, "macro_f1/es": 0.5, "macro_f1/hi": 0.4, "macro_f1/all": 0.5}


def test_advantages_bounded_with_one_outlier():
    rewards = np.array([0.35] * 7 + [0.95])
    floor = 1e-3

    advantages = group_advantages(rewards, floor)

    assert np.all(np.isfinite(advantages))
    assert np.abs(advantages).max() <= 1 / floor
    assert np.abs(advantages).max() <= math.sqrt(len(rewards) - 1) + 1e-9
    assert advantages[-1] > 0 > advantages[0]


def test_advantages_of_equal_rewards_are_zero():
    advantages = group_advantages(np.full(8, 0.35), 1e-3)

    assert np.all(advantages == 0.0)
    assert not np.any(np.isnan(advantages))


def test_advantages_with_tiny_spread_use_floor():
    rewards = np.array([0.5, 0.5 + 1e-6])

    advantages = group_advantages(rewards, std_floor=1e-3)

    np.testing.assert_allclose(advantages, [-5e-4, 5e-4])


def test_weights_from_logits_average_one():
    weights = weights_from_logits(np.array([[0.0, 0.0, 0.0], [3.0, -1.0, 0.5]]))

    np.testing.assert_allclose(weights[0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(weights.sum(axis=-1), [3.0, 3.0])
    assert np.all(weights > 0)


def test_state_encoding_replaces_nan():
    state = encode_state({"macro_f1/hi": math.nan, "macro_f1/en": 0.7}, 0.5, [1.0, 1.0, 1.0])

    assert state.shape == (STATE_SIZE,)
    assert np.all(np.isfinite(state))


def test_reward_designs():
    after = {**METRICS, "soft_macro_f1/hi": 0.55, "soft_macro_f1/all": 0.52, "macro_f1/all": 0.47}
    soft, hard = RewardSettings("soft_macro_f1"), RewardSettings("macro_f1")

    assert math.isclose(get_reward_design("macro_f1_gain")(METRICS, after, soft), 0.02)
    assert math.isclose(get_reward_design("macro_f1_gain")(METRICS, after, hard), -0.03)
    # worst language moves from hi (0.40) to es (0.50)
    assert math.isclose(get_reward_design("worst_lang_f1_gain")(METRICS, after, soft), 0.10)
    assert get_reward_design("worst_lang_f1_gain")(METRICS, after, hard) == 0.0
    with pytest.raises(ValueError, match="unknown reward design"):
        get_reward_design("accuracy_gain")


def test_balanced_reward_adds_lambda_times_worst_gain():
    after = {**METRICS, "soft_macro_f1/hi": 0.55}

    # per-language gains 0, 0, 0.15: mean 0.05; worst moves from 0.40 to 0.50
    reward = get_reward_design("balanced")(METRICS, after, RewardSettings("soft_macro_f1", balanced_lambda=2.0))

    assert math.isclose(reward, 0.05 + 2.0 * 0.10)


def test_gain_minus_cost_charges_per_thousand_examples():
    after = {**METRICS, "soft_macro_f1/all": 0.52}
    settings = RewardSettings("soft_macro_f1", cost_coefficient=0.01, cost_kexamples=0.32)

    assert math.isclose(get_reward_design("gain_minus_cost")(METRICS, after, settings), 0.02 - 0.0032)


def test_reward_without_scores_is_nan():
    empty = {"soft_macro_f1/en": math.nan}

    for name in ("macro_f1_gain", "worst_lang_f1_gain", "balanced", "gain_minus_cost"):
        assert math.isnan(get_reward_design(name)(empty, empty, RewardSettings()))


def _state(progress: float) -> dict:
    return {"metrics": METRICS, "progress": progress, "kd_weight": [1.0, 1.0, 1.0]}


def test_policy_starts_uniform_and_samples_a_group():
    controller = WeightController(ControllerConfig(group_size=6), [1.0, 1.0, 1.0], seed=0)

    candidates = np.asarray(controller.propose(1, _state(0.1)))

    assert candidates.shape == (6, 3)
    np.testing.assert_allclose(candidates.sum(axis=1), 3.0)
    assert np.std(candidates) > 0


def test_repeated_calls_return_same_decision():
    controller = WeightController(ControllerConfig(group_size=4, reward_design="macro_f1_gain"), [1.0] * 3, seed=0)
    first = controller.propose(7, _state(0.2))
    outcome = {"before": METRICS, "after": [{**METRICS, "soft_macro_f1/all": 0.5 + 0.01 * i} for i in range(4)]}

    applied = controller.update(7, outcome)

    assert controller.propose(7, _state(0.9)) == first
    assert controller.update(7, outcome) == applied
    assert applied == first[3]


def test_policy_learns_rewarded_direction():
    config = ControllerConfig(group_size=8, reward_design="macro_f1_gain", learning_rate=0.05)
    controller = WeightController(config, [1.0] * 3, seed=0)

    for decision in range(1, 31):
        candidates = controller.propose(decision, _state(decision / 30))
        # Hindi weight is what earns reward here.
        after = [{**METRICS, "soft_macro_f1/all": 0.5 + 0.05 * weights[2]} for weights in candidates]
        controller.update(decision, {"before": METRICS, "after": after})

    with torch.no_grad():
        mean = controller.policy.forward_inference({"obs": torch.from_numpy(encode_state(METRICS, 1.0, [1.0] * 3))[None]})
    weights = weights_from_logits(mean["action_mean"][0].numpy().astype(float))
    assert weights[2] > 1.5
    assert weights[2] > weights[0]
    assert weights[2] > weights[1]
    learner = controller.history()[-1]["learner"]
    assert learner["kl_to_reference"] >= 0
    assert 0 <= learner["clip_fraction"] <= 1


def test_non_finite_reward_is_excluded():
    controller = WeightController(ControllerConfig(group_size=4, reward_design="macro_f1_gain"), [1.0] * 3, seed=0)
    controller.propose(1, _state(0.1))
    after = [{**METRICS, "soft_macro_f1/all": value} for value in (0.6, math.nan, 0.55, math.inf)]

    applied = controller.update(1, {"before": METRICS, "after": after})

    record = controller.history()[0]
    assert record["excluded"] == [1, 3]
    assert applied == record["candidates"][0]
    assert math.isfinite(record["learner"]["policy_loss"])
    assert all(torch.isfinite(parameter).all() for parameter in controller.policy.parameters())


def test_update_without_proposal_fails():
    controller = WeightController(ControllerConfig(), [1.0] * 3, seed=0)

    with pytest.raises(KeyError, match="decision 3"):
        controller.update(3, {"before": METRICS, "after": []})


def _run_decisions(controller: WeightController, decisions: range) -> None:
    for decision in decisions:
        candidates = controller.propose(decision, _state(decision / 10))
        after = [{**METRICS, "soft_macro_f1/all": 0.5 + 0.05 * weights[2]} for weights in candidates]
        controller.update(decision, {"before": METRICS, "after": after})


def test_controller_state_restores_policy_optimizer_reference_and_history(tmp_path):
    config = ControllerConfig(group_size=4, reward_design="macro_f1_gain", learning_rate=0.05, ref_update_interval=2)
    original = WeightController(config, [1.0] * 3, seed=0)
    _run_decisions(original, range(1, 4))
    path = tmp_path / "controller.pt"
    torch.save(original.get_state(), path)

    resumed = WeightController(config, [1.0] * 3, seed=123)
    resumed.set_state(torch.load(path, weights_only=False))
    expected = original.propose(4, _state(0.4))
    resumed_candidates = resumed.propose(4, _state(0.4))

    assert resumed_candidates == expected
    assert resumed.history()[:3] == original.history()[:3]
    assert resumed.updates == original.updates == 3
    for name, tensor in original.reference.state_dict().items():
        assert torch.equal(tensor, resumed.reference.state_dict()[name])
    # The optimiser moments came back too: one more identical update gives identical parameters.
    _run_decisions(original, range(5, 6))
    _run_decisions(resumed, range(5, 6))
    for left, right in zip(original.policy.parameters(), resumed.policy.parameters()):
        assert torch.allclose(left, right)


def test_decision_summary_logs_group_statistics(caplog):
    controller = WeightController(ControllerConfig(group_size=4, reward_design="macro_f1_gain"), [1.0] * 3, seed=0)
    controller.propose(1, _state(0.1))
    flat = [{**METRICS} for _ in range(4)]

    with caplog.at_level("INFO", logger="rlkd.control.controller"):
        controller.update(1, {"before": METRICS, "after": flat})

    summary = controller.history()[0]["summary"]
    assert summary["reward_mean"] == 0.0
    assert summary["reward_std"] == 0.0
    assert summary["zero_spread"] == 1.0
    assert summary["zero_spread_share"] == 1.0
    assert math.isclose(summary["weight_entropy"], math.log(3), rel_tol=1e-6)
    assert "zero-spread groups 100%" in caplog.text
