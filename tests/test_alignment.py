import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from rlkd.train.alignment import AlignedStudent, even_layer_map
from rlkd.train.step import LossSettings, build_optimizer, compute_loss


def tiny_bert(hidden: int, layers: int, dropout: float = 0.1) -> BertForSequenceClassification:
    torch.manual_seed(layers * 100 + hidden)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, num_labels=3, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    ))


def batch() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor([[1, 5, 6, 2, 0, 0], [1, 7, 8, 9, 10, 2]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]),
        "labels": torch.tensor([0, 2]),
        "lang_proportions": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]),
    }


def test_even_layer_map():
    assert even_layer_map(2, 6) == [(1, 3), (2, 6)]
    assert even_layer_map(3, 3) == [(1, 1), (2, 2), (3, 3)]


def test_loss_weights_examples_by_language():
    model = AlignedStudent(tiny_bert(16, 1), tiny_bert(24, 2, dropout=0.5), [(1, 2)]).train()
    settings = LossSettings("hidden_alignment", 2.0, kd_coefficient=0.5, ce_weight=0.25)
    kd_weight = torch.tensor([2.0, 0.0, 1.0])

    torch.manual_seed(0)
    loss = compute_loss(model, batch(), kd_weight, settings)

    # kd_weight(x) = p . w: 2.0 for the English tweet, 0.5 for the es/hi tweet.
    expected_kd = (2.0 * loss.per_example_kd[0] + 0.5 * loss.per_example_kd[1]) / 2
    torch.testing.assert_close(loss.kd, expected_kd)
    torch.testing.assert_close(loss.total, 0.5 * loss.kd + 0.25 * loss.ce)
    assert torch.all(loss.per_example_kd > 0)


def test_teacher_frozen_and_deterministic():
    model = AlignedStudent(tiny_bert(16, 1), tiny_bert(24, 2, dropout=0.5)).train()
    optimizer = build_optimizer(model, 1e-3)
    settings = LossSettings("hidden_alignment", 2.0, 1.0, 1.0)

    loss = compute_loss(model, batch(), torch.ones(3), settings)
    loss.total.backward()

    assert not model.teacher.training
    assert all(parameter.grad is None for parameter in model.teacher.parameters())
    assert any(parameter.grad is not None for parameter in model.alignment.parameters())
    assert all(id(parameter) not in {id(p) for p in model.teacher.parameters()}
               for group in optimizer.param_groups for parameter in group["params"])


def test_eval_mode_skips_teacher():
    model = AlignedStudent(tiny_bert(16, 1), tiny_bert(24, 2)).eval()

    outputs = model(batch()["input_ids"], batch()["attention_mask"])

    assert outputs.hidden_loss is None
    assert outputs.logits.shape == (2, 3)


def test_layer_map_out_of_range():
    with pytest.raises(ValueError, match="invalid distill.layer_map entry"):
        AlignedStudent(tiny_bert(16, 1), tiny_bert(24, 2), [(2, 1)])
