"""Tests for the KD losses in rlkd.losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification, BertModel

from rlkd.constants import LABELS, LANGS
from rlkd.losses import (
    LOGIT_LOSSES,
    DistillationLoss,
    HiddenStateAlignment,
    distillation_loss,
    forward_kl,
    forward_kl_per_example,
    freeze,
    frozen_teacher_logits,
    get_logit_loss,
    jensen_shannon,
    jensen_shannon_per_example,
    language_kd_weights,
    per_example_kd,
    reverse_kl,
    reverse_kl_per_example,
    skew_kl,
    skew_kl_per_example,
)

NUM_CLASSES = len(LABELS)
REDUCED_LOSSES = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "jensen_shannon": jensen_shannon,
    "skew_kl": skew_kl,
}


def plain_softmax(logits: list[float], temperature: float) -> list[float]:
    exps = [math.exp(value / temperature) for value in logits]
    total = sum(exps)
    return [value / total for value in exps]


def plain_kl(p: list[float], q: list[float]) -> float:
    return sum(p_c * math.log(p_c / q_c) for p_c, q_c in zip(p, q))


def random_logit_pairs(seed: int, batch_size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return (student, teacher) logit pairs at several scales, plus a near-identical pair."""
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for scale in (1e-3, 1.0, 10.0, 100.0):
        student = torch.randn(batch_size, NUM_CLASSES, generator=generator) * scale
        teacher = torch.randn(batch_size, NUM_CLASSES, generator=generator) * scale
        pairs.append((student, teacher))
    student = torch.randn(batch_size, NUM_CLASSES, generator=generator) * 5
    teacher = student + 1e-6 * torch.randn(batch_size, NUM_CLASSES, generator=generator)
    pairs.append((student, teacher))
    return pairs


# ---------------------------------------------------------------------------
# Values of the logit divergences
# ---------------------------------------------------------------------------


def test_forward_kl_identical_logits_is_zero():
    logits = torch.tensor([[1.0, 0.0, 0.0]])

    loss = forward_kl(logits, logits.clone(), softmax_temperature=4.0)

    assert loss.item() == 0.0


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_divergences_never_negative(name):
    for seed in range(50):
        for student, teacher in random_logit_pairs(seed):
            for temperature in (0.5, 1.0, 4.0, 10.0):
                values = per_example_kd(name, student, teacher, temperature)

                assert values.shape == (student.shape[0],)
                assert torch.isfinite(values).all(), (seed, temperature)
                assert (values >= 0).all(), (seed, temperature, values.min().item())


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_divergences_zero_for_identical_logits(name):
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(64, NUM_CLASSES, generator=generator) * 10

    values = per_example_kd(name, logits, logits.clone(), 4.0)

    assert values.abs().max().item() <= 1e-6


def test_forward_kl_scaled_by_temperature_squared():
    student = [1.0, 0.0, 0.0]
    teacher = [0.0, 1.0, 0.0]
    temperature = 4.0
    plain_softened_kl = plain_kl(
        plain_softmax(teacher, temperature), plain_softmax(student, temperature)
    )

    loss = forward_kl(
        torch.tensor([student], dtype=torch.float64),
        torch.tensor([teacher], dtype=torch.float64),
        softmax_temperature=temperature,
    )

    assert loss.item() == pytest.approx(16.0 * plain_softened_kl, rel=1e-12)
    assert loss.item() / 16.0 == pytest.approx(plain_softened_kl, rel=1e-12)


def test_forward_kl_sums_classes_averages_batch():
    teacher_probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    teacher_logits = teacher_probs.log()
    student_logits = torch.zeros(2, NUM_CLASSES, dtype=torch.float64)
    uniform = [1.0 / 3] * 3
    expected = (
        plain_kl([0.7, 0.2, 0.1], uniform) + plain_kl([0.1, 0.1, 0.8], uniform)
    ) / 2

    loss = forward_kl(student_logits, teacher_logits, softmax_temperature=1.0)
    per_element_mean = F.kl_div(
        F.log_softmax(student_logits, dim=-1), teacher_probs, reduction="none"
    ).mean()

    assert round(loss.item(), 4) == 0.3782
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert per_element_mean.item() == pytest.approx(expected / NUM_CLASSES, rel=1e-12)
    assert round(per_element_mean.item(), 4) != 0.3782


def test_example_weights_divide_by_batch_size():
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(2, NUM_CLASSES, generator=generator, dtype=torch.float64)
    teacher = torch.randn(2, NUM_CLASSES, generator=generator, dtype=torch.float64)
    per_example = forward_kl_per_example(student, teacher, 2.0)

    first_only = forward_kl(student, teacher, 2.0, example_weights=torch.tensor([1.0, 0.0]))
    halved = forward_kl(student, teacher, 2.0, example_weights=torch.tensor([0.5, 0.5]))

    assert first_only.item() == pytest.approx(per_example[0].item() / 2, rel=1e-12)
    assert halved.item() == pytest.approx(per_example.mean().item() / 2, rel=1e-12)


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_reduced_loss_is_mean_of_per_example(name):
    generator = torch.Generator().manual_seed(11)
    student = torch.randn(8, NUM_CLASSES, generator=generator, dtype=torch.float64)
    teacher = torch.randn(8, NUM_CLASSES, generator=generator, dtype=torch.float64)
    weights = torch.rand(8, generator=generator, dtype=torch.float64)

    per_example = per_example_kd(name, student, teacher, 3.0)
    reduced = REDUCED_LOSSES[name](student, teacher, 3.0, example_weights=weights)

    assert reduced.item() == pytest.approx((weights * per_example).sum().item() / 8, rel=1e-12)


def test_reverse_kl_swaps_arguments():
    for seed in range(20):
        for student, teacher in random_logit_pairs(seed):
            forward_swapped = forward_kl_per_example(teacher, student, 2.0)
            reverse = reverse_kl_per_example(student, teacher, 2.0)

            torch.testing.assert_close(reverse, forward_swapped)


def test_jensen_shannon_symmetric():
    for seed in range(20):
        for student, teacher in random_logit_pairs(seed):
            one_way = jensen_shannon_per_example(student, teacher, 2.0)
            other_way = jensen_shannon_per_example(teacher, student, 2.0)

            torch.testing.assert_close(one_way, other_way)


def test_jensen_shannon_bounded_by_ln2():
    for seed in range(20):
        for student, teacher in random_logit_pairs(seed):
            for temperature in (1.0, 4.0):
                values = jensen_shannon_per_example(student, teacher, temperature)
                bound = temperature**2 * math.log(2.0)

                assert values.max().item() <= bound * (1 + 1e-6)

    disjoint = jensen_shannon(
        torch.tensor([[50.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[0.0, 50.0, 0.0]], dtype=torch.float64),
        softmax_temperature=1.0,
    )
    assert disjoint.item() == pytest.approx(math.log(2.0), rel=1e-9)


def test_jensen_shannon_matches_hand_formula():
    student = [0.5, -1.0, 2.0]
    teacher = [1.0, 0.0, -0.5]
    p = plain_softmax(teacher, 2.0)
    q = plain_softmax(student, 2.0)
    m = [(p_c + q_c) / 2 for p_c, q_c in zip(p, q)]
    expected = 4.0 * (plain_kl(p, m) + plain_kl(q, m)) / 2

    value = jensen_shannon(
        torch.tensor([student], dtype=torch.float64),
        torch.tensor([teacher], dtype=torch.float64),
        softmax_temperature=2.0,
    )

    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_skew_kl_zero_skew_equals_forward_kl():
    for seed in range(20):
        for student, teacher in random_logit_pairs(seed):
            for temperature in (1.0, 4.0):
                skewed = skew_kl_per_example(student, teacher, temperature, skew=0.0)
                forward = forward_kl_per_example(student, teacher, temperature)

                torch.testing.assert_close(skewed, forward)


def test_skew_kl_matches_hand_formula():
    student = [0.5, -1.0, 2.0]
    teacher = [1.0, 0.0, -0.5]
    skew = 0.1
    p = plain_softmax(teacher, 2.0)
    q = plain_softmax(student, 2.0)
    mixture = [skew * p_c + (1 - skew) * q_c for p_c, q_c in zip(p, q)]
    expected = 4.0 * plain_kl(p, mixture)

    value = skew_kl(
        torch.tensor([student], dtype=torch.float64),
        torch.tensor([teacher], dtype=torch.float64),
        softmax_temperature=2.0,
        skew=skew,
    )

    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_skew_kl_bounded_and_full_skew_zero():
    for seed in range(20):
        for student, teacher in random_logit_pairs(seed):
            bounded = skew_kl_per_example(student, teacher, 2.0, skew=0.1)
            full_skew = skew_kl_per_example(student, teacher, 2.0, skew=1.0)

            assert bounded.max().item() <= 4.0 * math.log(10.0) * (1 + 1e-6)
            assert full_skew.abs().max().item() == 0.0


@pytest.mark.parametrize("skew", [-0.1, 1.5, float("nan")])
def test_skew_kl_rejects_invalid_skew(skew):
    logits = torch.zeros(1, NUM_CLASSES)

    with pytest.raises(ValueError, match="skew"):
        skew_kl(logits, logits, 1.0, skew=skew)


def test_half_precision_logits_upcast():
    generator = torch.Generator().manual_seed(5)
    student = torch.randn(8, NUM_CLASSES, generator=generator)
    teacher = torch.randn(8, NUM_CLASSES, generator=generator)

    from_bfloat16 = forward_kl_per_example(student.bfloat16(), teacher.bfloat16(), 2.0)
    from_float32 = forward_kl_per_example(
        student.bfloat16().float(), teacher.bfloat16().float(), 2.0
    )

    assert from_bfloat16.dtype == torch.float32
    torch.testing.assert_close(from_bfloat16, from_float32)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_divergence_gradients_pass_gradcheck(name):
    generator = torch.Generator().manual_seed(13)
    student = torch.randn(4, NUM_CLASSES, generator=generator, dtype=torch.float64)
    teacher = torch.randn(4, NUM_CLASSES, generator=generator, dtype=torch.float64)
    student.requires_grad_(True)
    teacher.requires_grad_(True)

    def divergence(student_logits, teacher_logits):
        return per_example_kd(name, student_logits, teacher_logits, 2.0)

    assert torch.autograd.gradcheck(divergence, (student, teacher))


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_kd_gradient_size_stable_across_temperature(name):
    # With the T**2 factor the gradient norm w.r.t. the student logits tends to
    # a constant as T grows. Without it the norm would shrink like 1 / T**2.
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(32, NUM_CLASSES, generator=generator, dtype=torch.float64)
    teacher = 2 * torch.randn(32, NUM_CLASSES, generator=generator, dtype=torch.float64)
    temperatures = (2.0, 4.0, 8.0, 16.0)

    scaled_norms = []
    unscaled_norms = []
    for temperature in temperatures:
        student_logits = student.clone().requires_grad_(True)
        loss = REDUCED_LOSSES[name](student_logits, teacher, temperature)
        (gradient,) = torch.autograd.grad(loss, student_logits)
        scaled_norms.append(gradient.norm().item())
        unscaled_norms.append(gradient.norm().item() / temperature**2)

    assert max(scaled_norms) / min(scaled_norms) < 1.5
    assert max(unscaled_norms) / min(unscaled_norms) > 30


# ---------------------------------------------------------------------------
# Loss lookup and input checks
# ---------------------------------------------------------------------------


def test_logit_loss_names():
    assert set(LOGIT_LOSSES) == {"forward_kl", "reverse_kl", "jensen_shannon", "skew_kl"}
    assert get_logit_loss("skew_kl") is skew_kl_per_example


def test_unknown_loss_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        get_logit_loss("wasserstein")

    message = str(error.value)
    assert "'wasserstein'" in message
    for name in LOGIT_LOSSES:
        assert name in message


def test_per_example_kd_unknown_name_raises():
    logits = torch.zeros(1, NUM_CLASSES)

    with pytest.raises(ValueError, match="forward_kl"):
        per_example_kd("kl", logits, logits, 1.0)


@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_temperature_must_be_positive(name, temperature):
    logits = torch.zeros(2, NUM_CLASSES)

    with pytest.raises(ValueError) as error:
        per_example_kd(name, logits, logits, temperature)

    assert "softmax_temperature" in str(error.value)
    assert repr(temperature) in str(error.value)


def test_mismatched_logit_shapes_raise():
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        forward_kl(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        forward_kl(torch.zeros(3), torch.zeros(3), 1.0)


def test_wrong_example_weights_shape_raises():
    logits = torch.zeros(2, NUM_CLASSES)

    with pytest.raises(ValueError, match="example_weights"):
        forward_kl(logits, logits, 1.0, example_weights=torch.ones(3))


def test_empty_batch_raises():
    logits = torch.zeros(0, NUM_CLASSES)

    with pytest.raises(ValueError, match="empty batch"):
        forward_kl(logits, logits, 1.0)


# ---------------------------------------------------------------------------
# Per-language weights and the combined loss
# ---------------------------------------------------------------------------


def test_language_kd_weights_uniform_weight_is_one():
    torch.manual_seed(2)
    proportions = torch.distributions.Dirichlet(torch.ones(len(LANGS))).sample((100,))

    weights = language_kd_weights(proportions, torch.ones(len(LANGS)))

    assert weights.shape == (100,)
    torch.testing.assert_close(weights, torch.ones(100))


def test_language_kd_weights_mix_by_proportion():
    proportions = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
    kd_weight = torch.tensor([1.0, 2.0, 3.0])

    weights = language_kd_weights(proportions, kd_weight)

    torch.testing.assert_close(weights, torch.tensor([1.5, 3.0, 0.2 + 0.6 + 1.5]))


def test_language_kd_weights_shape_mismatch_raises():
    with pytest.raises(ValueError, match="kd_weight"):
        language_kd_weights(torch.ones(4, len(LANGS)), torch.ones(len(LANGS) + 1))


def make_distillation_batch(seed: int, batch_size: int = 6):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch_size, NUM_CLASSES, generator=generator, dtype=torch.float64)
    teacher = torch.randn(batch_size, NUM_CLASSES, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
    proportions = torch.rand(batch_size, len(LANGS), generator=generator, dtype=torch.float64)
    proportions = proportions / proportions.sum(dim=1, keepdim=True)
    return student, teacher, labels, proportions


def test_distillation_loss_zero_weights_is_zero():
    student, teacher, labels, proportions = make_distillation_batch(seed=1)

    result = distillation_loss(
        student,
        teacher,
        labels,
        proportions,
        torch.zeros(len(LANGS)),
        softmax_temperature=2.0,
        ce_weight=0.0,
    )

    assert result.total.item() == 0.0
    assert result.kd.item() == 0.0
    assert (result.per_example_kd > 0).all()


def test_distillation_loss_combines_terms():
    student, teacher, labels, proportions = make_distillation_batch(seed=4)
    student.requires_grad_(True)
    kd_weight = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)

    result = distillation_loss(
        student,
        teacher,
        labels,
        proportions,
        kd_weight,
        softmax_temperature=3.0,
        ce_weight=0.4,
        kd_coefficient=0.5,
        loss_name="jensen_shannon",
    )
    divergences = jensen_shannon_per_example(student, teacher, 3.0)
    example_weights = proportions @ kd_weight
    expected_kd = (example_weights * divergences).sum() / student.shape[0]
    expected_per_example_ce = F.cross_entropy(student, labels, reduction="none")

    assert isinstance(result, DistillationLoss)
    assert result.kd.item() == pytest.approx(expected_kd.item(), rel=1e-12)
    assert result.ce.item() == pytest.approx(expected_per_example_ce.mean().item(), rel=1e-12)
    assert result.total.item() == pytest.approx(
        0.5 * result.kd.item() + 0.4 * result.ce.item(), rel=1e-12
    )
    torch.testing.assert_close(result.per_example_kd, divergences.detach())
    torch.testing.assert_close(result.per_example_ce, expected_per_example_ce.detach())
    assert not result.per_example_kd.requires_grad
    assert not result.per_example_ce.requires_grad
    assert result.total.requires_grad


def test_distillation_loss_passes_loss_options():
    student, teacher, labels, proportions = make_distillation_batch(seed=8)

    result = distillation_loss(
        student,
        teacher,
        labels,
        proportions,
        torch.ones(len(LANGS)),
        softmax_temperature=2.0,
        ce_weight=0.0,
        loss_name="skew_kl",
        loss_options={"skew": 0.3},
    )

    expected = skew_kl_per_example(student, teacher, 2.0, skew=0.3)
    torch.testing.assert_close(result.per_example_kd, expected)


def test_distillation_loss_gives_teacher_no_gradient():
    student, teacher, labels, proportions = make_distillation_batch(seed=9)
    student.requires_grad_(True)
    teacher.requires_grad_(True)

    result = distillation_loss(
        student,
        teacher,
        labels,
        proportions,
        torch.ones(len(LANGS)),
        softmax_temperature=2.0,
        ce_weight=1.0,
        loss_name="reverse_kl",
    )
    result.total.backward()

    assert student.grad is not None
    assert teacher.grad is None


def test_distillation_loss_wrong_labels_shape_raises():
    student, teacher, labels, proportions = make_distillation_batch(seed=2)

    with pytest.raises(ValueError, match="labels"):
        distillation_loss(
            student,
            teacher,
            labels[:-1],
            proportions,
            torch.ones(len(LANGS)),
            softmax_temperature=2.0,
            ce_weight=1.0,
        )


# ---------------------------------------------------------------------------
# Frozen teacher with dropout
# ---------------------------------------------------------------------------


def make_bert_config(hidden_size: int, num_layers: int, dropout: float) -> BertConfig:
    return BertConfig(
        vocab_size=100,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=NUM_CLASSES,
    )


def make_bert_classifier(hidden_size: int, dropout: float, seed: int):
    torch.manual_seed(seed)
    return BertForSequenceClassification(make_bert_config(hidden_size, 2, dropout))


def make_token_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 100, (4, 12), generator=generator)
    attention_mask = torch.ones(4, 12, dtype=torch.long)
    attention_mask[1, 7:] = 0
    attention_mask[3, 3:] = 0
    input_ids[attention_mask == 0] = 0
    labels = torch.tensor([0, 1, 2, 1])
    proportions = torch.tensor(
        [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.0, 0.8], [0.0, 0.4, 0.6]]
    )
    return input_ids, attention_mask, labels, proportions


def run_kd_step(student, teacher, optimizer, batch) -> torch.Tensor:
    input_ids, attention_mask, labels, proportions = batch
    teacher_logits = frozen_teacher_logits(teacher, input_ids, attention_mask)
    student_logits = student(input_ids=input_ids, attention_mask=attention_mask).logits
    result = distillation_loss(
        student_logits,
        teacher_logits,
        labels,
        proportions,
        torch.tensor([1.0, 0.5, 2.0]),
        softmax_temperature=2.0,
        ce_weight=0.5,
    )
    optimizer.zero_grad()
    result.total.backward()
    optimizer.step()
    return teacher_logits


def test_teacher_dropout_changes_logits_in_train_mode():
    # The frozen-teacher test below can only fail if dropout is active in train mode.
    teacher = make_bert_classifier(hidden_size=32, dropout=0.5, seed=0)
    input_ids, attention_mask, _, _ = make_token_batch()
    teacher.train()

    with torch.no_grad():
        first = teacher(input_ids=input_ids, attention_mask=attention_mask).logits
        second = teacher(input_ids=input_ids, attention_mask=attention_mask).logits

    assert not torch.equal(first, second)


@pytest.mark.parametrize("freeze_first", [True, False])
def test_frozen_teacher_logits_ignore_train_mode(freeze_first):
    teacher = make_bert_classifier(hidden_size=32, dropout=0.5, seed=0)
    student = make_bert_classifier(hidden_size=16, dropout=0.1, seed=1)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    batch = make_token_batch()
    if freeze_first:
        freeze(teacher)
    teacher.train()  # the mistake the helpers must undo

    first = run_kd_step(student, teacher, optimizer, batch)
    teacher.train()
    second = run_kd_step(student, teacher, optimizer, batch)

    assert torch.equal(first, second)
    assert not teacher.training
    assert not first.requires_grad
    for name, parameter in teacher.named_parameters():
        assert parameter.grad is None, name
    assert any(parameter.grad is not None for parameter in student.parameters())


def test_freeze_sets_eval_and_disables_grad():
    teacher = make_bert_classifier(hidden_size=32, dropout=0.5, seed=0)
    teacher.train()

    returned = freeze(teacher)

    assert returned is teacher
    assert not teacher.training
    assert all(not module.training for module in teacher.modules())
    assert all(not parameter.requires_grad for parameter in teacher.parameters())


# ---------------------------------------------------------------------------
# Hidden-state alignment
# ---------------------------------------------------------------------------


def test_hidden_alignment_ignores_padding():
    generator = torch.Generator().manual_seed(0)
    hidden_size = 8
    short_student = torch.randn(1, 3, hidden_size, generator=generator, dtype=torch.float64)
    short_teacher = torch.randn(1, 3, hidden_size, generator=generator, dtype=torch.float64)
    long_student = torch.randn(1, 40, hidden_size, generator=generator, dtype=torch.float64)
    long_teacher = torch.randn(1, 40, hidden_size, generator=generator, dtype=torch.float64)
    # Large values in the padding make any leak of padding into the loss obvious.
    padding = torch.full((1, 37, hidden_size), 1e3, dtype=torch.float64)
    student_batch = torch.cat([torch.cat([short_student, padding], dim=1), long_student])
    teacher_batch = torch.cat([torch.cat([short_teacher, -padding], dim=1), long_teacher])
    mask = torch.zeros(2, 40, dtype=torch.long)
    mask[0, :3] = 1
    mask[1, :] = 1
    alignment = HiddenStateAlignment(hidden_size, hidden_size, {0: 0})

    batched = alignment.per_example_loss([student_batch], [teacher_batch], mask)
    alone = alignment.per_example_loss(
        [short_student], [short_teacher], torch.ones(1, 3, dtype=torch.long)
    )
    first_only = alignment([student_batch], [teacher_batch], mask, torch.tensor([1.0, 0.0]))

    expected_short = (short_student - short_teacher).pow(2).mean()
    assert alone.item() == pytest.approx(expected_short.item(), rel=1e-12)
    assert batched[0].item() == pytest.approx(alone.item(), rel=1e-12)
    assert batched[1].item() == pytest.approx(
        (long_student - long_teacher).pow(2).mean().item(), rel=1e-12
    )
    # forward divides by the batch size, 2, as the KD losses do.
    assert first_only.item() == pytest.approx(alone.item() / 2, rel=1e-12)


def test_hidden_alignment_padding_with_bert_models():
    torch.manual_seed(0)
    student = freeze(BertModel(make_bert_config(hidden_size=16, num_layers=2, dropout=0.1)))
    teacher = freeze(BertModel(make_bert_config(hidden_size=32, num_layers=4, dropout=0.1)))
    alignment = HiddenStateAlignment(16, 32, {1: 2, 2: 4})
    generator = torch.Generator().manual_seed(1)
    short_ids = torch.randint(1, 100, (1, 3), generator=generator)
    long_ids = torch.randint(1, 100, (1, 40), generator=generator)
    input_ids = torch.zeros(2, 40, dtype=torch.long)
    input_ids[0, :3] = short_ids
    input_ids[1] = long_ids
    attention_mask = (input_ids != 0).long()

    def hidden_states(model, ids, mask):
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states

    with torch.no_grad():
        batched = alignment.per_example_loss(
            hidden_states(student, input_ids, attention_mask),
            hidden_states(teacher, input_ids, attention_mask),
            attention_mask,
        )
        short_mask = torch.ones(1, 3, dtype=torch.long)
        alone = alignment.per_example_loss(
            hidden_states(student, short_ids, short_mask),
            hidden_states(teacher, short_ids, short_mask),
            short_mask,
        )

    assert batched[0].item() == pytest.approx(alone.item(), rel=1e-5)


def test_hidden_alignment_projects_different_widths():
    generator = torch.Generator().manual_seed(3)
    student_states = [torch.randn(2, 5, 4, generator=generator) for _ in range(3)]
    teacher_states = [
        torch.randn(2, 5, 6, generator=generator).requires_grad_(True) for _ in range(4)
    ]
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 2:] = 0
    alignment = HiddenStateAlignment(4, 6, [(0, 1), (2, 3)])

    loss = alignment(student_states, teacher_states, mask)
    loss.backward()

    assert len(alignment.projections) == 2
    for projection in alignment.projections:
        assert isinstance(projection, torch.nn.Linear)
        assert projection.weight.shape == (6, 4)
        assert projection.weight.grad is not None
    assert alignment.projections[0].weight is not alignment.projections[1].weight
    for state in teacher_states:
        assert state.grad is None

    with torch.no_grad():
        expected_per_example = torch.zeros(2)
        for projection, (student_layer, teacher_layer) in zip(
            alignment.projections, [(0, 1), (2, 3)]
        ):
            difference = projection(student_states[student_layer]) - teacher_states[teacher_layer]
            expected_per_example[0] += difference[0].pow(2).mean() / 2
            expected_per_example[1] += difference[1, :2].pow(2).mean() / 2
    assert loss.item() == pytest.approx(expected_per_example.mean().item(), rel=1e-5)


def test_hidden_alignment_identity_for_equal_widths():
    alignment = HiddenStateAlignment(8, 8, {1: 2, 2: 4})

    assert alignment.layer_pairs == ((1, 2), (2, 4))
    assert all(isinstance(p, torch.nn.Identity) for p in alignment.projections)
    assert sum(parameter.numel() for parameter in alignment.parameters()) == 0


def test_hidden_alignment_layer_map_forms_agree():
    generator = torch.Generator().manual_seed(4)
    student_states = [torch.randn(2, 5, 8, generator=generator) for _ in range(3)]
    teacher_states = [torch.randn(2, 5, 8, generator=generator) for _ in range(5)]
    mask = torch.ones(2, 5, dtype=torch.long)

    from_dict = HiddenStateAlignment(8, 8, {1: 2, 2: 4})(student_states, teacher_states, mask)
    from_list = HiddenStateAlignment(8, 8, [(1, 2), (2, 4)])(student_states, teacher_states, mask)
    other_map = HiddenStateAlignment(8, 8, {1: 1, 2: 3})(student_states, teacher_states, mask)

    assert from_dict.item() == from_list.item()
    assert from_dict.item() != other_map.item()


def test_hidden_alignment_example_without_tokens_is_zero():
    states = [torch.randn(2, 4, 8)]
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    alignment = HiddenStateAlignment(8, 8, {0: 0})

    per_example = alignment.per_example_loss(states, [torch.randn(2, 4, 8)], mask)

    assert per_example[1].item() == 0.0
    assert per_example[0].item() > 0.0


def test_hidden_alignment_rejects_bad_inputs():
    with pytest.raises(ValueError, match="layer_map is empty"):
        HiddenStateAlignment(8, 8, {})
    with pytest.raises(ValueError, match="non-negative"):
        HiddenStateAlignment(8, 8, [(0, -1)])
    with pytest.raises(ValueError, match="student_hidden_size"):
        HiddenStateAlignment(0, 8, {0: 0})

    alignment = HiddenStateAlignment(8, 8, {3: 0})
    states = [torch.zeros(1, 2, 8)]
    mask = torch.ones(1, 2)
    with pytest.raises(ValueError, match="student layer 3"):
        alignment(states, states, mask)

    alignment = HiddenStateAlignment(8, 8, {0: 0})
    with pytest.raises(ValueError, match="teacher hidden state 0"):
        alignment(states, [torch.zeros(1, 3, 8)], mask)
