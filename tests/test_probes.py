"""Probes of one decision start from the same snapshot, whatever their order."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from rlkd.train.encoding import EncodedSplit, collate
from rlkd.train.evaluation import count_predictions, count_predictions_with_subset
from rlkd.train.probes import Prober, choose_probe_data
from rlkd.train.step import LossSettings, build_optimizer, training_step

SETTINGS = LossSettings("forward_kl", 2.0, 0.5, 0.5)


def split(size: int, seed: int) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size)
    language_index = rng.integers(0, 3, size)
    return EncodedSplit(
        ids=np.array([f"p{seed}:{i}" for i in range(size)]),
        input_ids=[np.concatenate([[1], rng.integers(5, 60, 6), [2 + label]]).astype(np.int32) for label in labels],
        labels=labels,
        lang_proportions=np.eye(3, dtype=np.float32)[language_index],
        language_index=language_index,
        teacher_logits=rng.normal(size=(size, 3)).astype(np.float32),
    )


@pytest.fixture
def prober() -> Prober:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3,
    ))
    optimizer = build_optimizer(model, 1e-2)
    train, dev = split(64, 1), split(32, 2)
    # A few real steps first, so the optimizer has Adam moments to leak.
    for start in range(0, 32, 8):
        training_step(model, optimizer, collate(train, np.arange(start, start + 8), 0), torch.ones(3), SETTINGS)
    data = choose_probe_data(train, dev, probe_steps=3, batch_size=8, reward_examples=32, seed=0)
    return Prober(model, optimizer, data, train, dev, SETTINGS, pad_token_id=0)


def test_same_candidate_same_result(prober):
    first, second = prober.run([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], seed=5)

    assert first == second


def test_order_does_not_matter(prober):
    a, b = [2.5, 0.25, 0.25], [0.25, 0.25, 2.5]

    forward = prober.run([a, b], seed=5)
    backward = prober.run([b, a], seed=5)

    assert forward[0] == backward[1]
    assert forward[1] == backward[0]
    assert forward[0] != forward[1]


def test_live_model_untouched(prober):
    before = {name: tensor.clone() for name, tensor in prober.model.state_dict().items()}
    moments = [state["exp_avg"].clone() for state in prober.optimizer.state.values()]

    prober.run([[3.0, 0.0, 0.0]], seed=1)

    for name, tensor in prober.model.state_dict().items():
        torch.testing.assert_close(tensor, before[name])
    for state, moment in zip(prober.optimizer.state.values(), moments):
        torch.testing.assert_close(state["exp_avg"], moment)


def test_truncated_checkpoint_names_the_file(tmp_path):
    from rlkd.train.loop import TRAIN_STATE_FILE, load_train_state

    model = BertForSequenceClassification(BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3,
    ))
    path = tmp_path / TRAIN_STATE_FILE
    torch.save({"step": 4, "model": model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(RuntimeError, match=f"cannot load checkpoint file {path}"):
        load_train_state(tmp_path)


def _assert_counts_close(actual, expected):
    np.testing.assert_array_equal(actual.confusion, expected.confusion)
    for name in ("soft_confusion", "kd_loss_sum", "ce_loss_sum", "agreement", "with_teacher"):
        np.testing.assert_allclose(getattr(actual, name), getattr(expected, name), rtol=1e-5, atol=1e-6)


def test_dev_pass_scores_reward_slice(prober):
    dev = prober.dev
    everything = np.arange(len(dev))
    reward = prober.data.reward_indices[::2]

    counts, reward_counts = count_predictions_with_subset(
        prober.model, dev, everything, reward, pad_token_id=0, softmax_temperature=2.0, kd_loss_name="forward_kl",
    )

    _assert_counts_close(counts, prober.count(prober.model, everything))
    _assert_counts_close(reward_counts, prober.count(prober.model, reward))
    assert reward_counts.confusion.sum() == len(reward)


def test_counts_ignore_example_order(prober):
    # Tweets of different lengths, so sorting by length changes which examples share a batch and its padding.
    rng = np.random.default_rng(3)
    dev = prober.dev
    dev.input_ids = [ids[: rng.integers(2, len(ids) + 1)] for ids in dev.input_ids]
    order = rng.permutation(len(dev))

    shuffled = count_predictions(prober.model, dev, order, pad_token_id=0, softmax_temperature=2.0,
                                 kd_loss_name="forward_kl", batch_size=5)
    in_order = count_predictions(prober.model, dev, np.arange(len(dev)), pad_token_id=0, softmax_temperature=2.0,
                                 kd_loss_name="forward_kl", batch_size=len(dev))

    _assert_counts_close(shuffled, in_order)
