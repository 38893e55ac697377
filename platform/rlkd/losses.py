"""Knowledge-distillation (KD) losses for the sentiment student.

The logit divergences compare temperature-softened class distributions
``p_T = softmax(logits / T)`` over the last dimension and are multiplied by
``T**2``. The gradient of ``T**2 * KL(p_teacher_T || p_student_T)`` with
respect to the student logits is ``T * (p_student_T - p_teacher_T)``. For
large ``T`` that tends to the centred logit difference divided by the number
of classes, so the size of the KD gradient stays roughly the same when ``T``
changes.

Batch reductions divide the weighted sum by the batch size ``B``, not by the
sum of the weights. A per-example weight therefore acts as an absolute scale
on that example's term: a batch whose weights are all 0.5 contributes half as
much as the same batch with weights 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LOGIT_LOSSES",
    "DistillationLoss",
    "HiddenStateAlignment",
    "distillation_loss",
    "forward_kl",
    "forward_kl_per_example",
    "freeze",
    "frozen_teacher_logits",
    "get_logit_loss",
    "jensen_shannon",
    "jensen_shannon_per_example",
    "language_kd_weights",
    "per_example_kd",
    "reverse_kl",
    "reverse_kl_per_example",
    "skew_kl",
    "skew_kl_per_example",
]

_HALF_DTYPES = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------------------
# Input checks and shared helpers
# ---------------------------------------------------------------------------


def _check_temperature(softmax_temperature: float) -> None:
    if not (math.isfinite(softmax_temperature) and softmax_temperature > 0):
        raise ValueError(
            f"softmax_temperature must be a finite number > 0, got {softmax_temperature!r}"
        )


def _check_logit_shapes(student_logits: Tensor, teacher_logits: Tensor) -> None:
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student_logits and teacher_logits must both have shape [batch, classes], "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """Return the promoted dtype of `tensors`, at least float32.

    Half-precision log-probabilities lose too many digits for a divergence
    between close distributions, so float16 and bfloat16 inputs are upcast.
    """
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _softened_log_probs(
    student_logits: Tensor, teacher_logits: Tensor, softmax_temperature: float
) -> tuple[Tensor, Tensor]:
    """Validate the inputs and return ``(log p_student_T, log p_teacher_T)``, each [B, C]."""
    _check_temperature(softmax_temperature)
    _check_logit_shapes(student_logits, teacher_logits)
    dtype = _compute_dtype(student_logits, teacher_logits)
    student_log_probs = F.log_softmax(student_logits.to(dtype) / softmax_temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.to(dtype) / softmax_temperature, dim=-1)
    return student_log_probs, teacher_log_probs


def _kl_from_log_probs(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Compute ``KL(p || q) = sum_c p_c * (log p_c - log q_c)`` per row.

    Args:
        log_p: [B, C] log-probabilities of the reference distribution ``p``.
        log_q: [B, C] log-probabilities of ``q``.

    Returns:
        [B] divergences, each >= 0.
    """
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    # KL is >= 0 by Gibbs' inequality, but rounding in the sum leaves values
    # such as -1e-8 when p and q nearly agree. The true value and gradient
    # there are close to 0, so clamping only removes the rounding error.
    return kl.clamp(min=0.0)


def _weighted_batch_mean(per_example: Tensor, example_weights: Tensor | None) -> Tensor:
    """Reduce [B] values to ``sum_i w_i * v_i / B``, with ``w_i = 1`` when weights are None."""
    batch_size = per_example.shape[0]
    if batch_size == 0:
        raise ValueError("cannot average a loss over an empty batch (batch size 0)")
    if example_weights is None:
        return per_example.mean()
    if example_weights.shape != (batch_size,):
        raise ValueError(
            f"example_weights must have shape [{batch_size}] (one weight per example), "
            f"got {tuple(example_weights.shape)}"
        )
    weights = example_weights.to(dtype=per_example.dtype, device=per_example.device)
    return (weights * per_example).sum() / batch_size


# ---------------------------------------------------------------------------
# Per-example logit divergences, each [B] and already multiplied by T**2
# ---------------------------------------------------------------------------


def forward_kl_per_example(
    student_logits: Tensor, teacher_logits: Tensor, softmax_temperature: float
) -> Tensor:
    """Compute ``T**2 * KL(p_teacher_T || p_student_T)`` for each example.

    ``KL(p || q) = sum_c p_c * (log p_c - log q_c)`` with
    ``p_T = softmax(logits / T)``.

    Args:
        student_logits: [B, C] finite student logits.
        teacher_logits: [B, C] finite teacher logits. Gradients flow into both
            arguments, so pass detached teacher logits.
        softmax_temperature: ``T > 0``.

    Returns:
        [B] divergences >= 0, in float32 or wider.

    Raises:
        ValueError: If ``T`` is not a finite number > 0 or the shapes differ.
    """
    student_log_probs, teacher_log_probs = _softened_log_probs(
        student_logits, teacher_logits, softmax_temperature
    )
    return softmax_temperature**2 * _kl_from_log_probs(teacher_log_probs, student_log_probs)


def reverse_kl_per_example(
    student_logits: Tensor, teacher_logits: Tensor, softmax_temperature: float
) -> Tensor:
    """Compute ``T**2 * KL(p_student_T || p_teacher_T)`` for each example.

    Args, return value and errors are those of `forward_kl_per_example`.
    """
    student_log_probs, teacher_log_probs = _softened_log_probs(
        student_logits, teacher_logits, softmax_temperature
    )
    return softmax_temperature**2 * _kl_from_log_probs(student_log_probs, teacher_log_probs)


def jensen_shannon_per_example(
    student_logits: Tensor, teacher_logits: Tensor, softmax_temperature: float
) -> Tensor:
    """Compute the Jensen-Shannon divergence times ``T**2`` for each example.

    ``JS(p, q) = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``,
    ``p = p_teacher_T`` and ``q = p_student_T``. JS is symmetric and lies in
    ``[0, ln 2]`` (natural log), so each value lies in ``[0, T**2 * ln 2]``
    up to rounding.

    Args, return value and errors are those of `forward_kl_per_example`.
    """
    student_log_probs, teacher_log_probs = _softened_log_probs(
        student_logits, teacher_logits, softmax_temperature
    )
    # log m = log((p + q) / 2), computed in log space so tiny p and q do not underflow.
    mixture_log_probs = torch.logaddexp(teacher_log_probs, student_log_probs) - math.log(2.0)
    divergence = 0.5 * (
        _kl_from_log_probs(teacher_log_probs, mixture_log_probs)
        + _kl_from_log_probs(student_log_probs, mixture_log_probs)
    )
    return softmax_temperature**2 * divergence


def skew_kl_per_example(
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    skew: float = 0.1,
) -> Tensor:
    """Compute the skew KL divergence times ``T**2`` for each example.

    ``SKL_a(p, q) = KL(p || a * p + (1 - a) * q)`` with ``a = skew``,
    ``p = p_teacher_T`` and ``q = p_student_T``. This is the skew forward KL
    of DistiLLM (Ko et al., ICML 2024), function ``skewed_forward_kl`` in
    github.com/jongwooko/distillm, ``distillm/losses.py``, whose default is
    also ``a = 0.1``. That function returns the cross-entropy
    ``-sum_c p_c log m_c``. This one subtracts the teacher entropy, which
    does not depend on the student, so the gradient is the same and the
    value is a divergence that is 0 when the distributions match.

    ``skew = 0`` gives the forward KL. For ``skew > 0`` each value is at most
    ``T**2 * ln(1 / skew)`` because the mixture is at least ``skew * p``.

    Args:
        student_logits: [B, C] finite student logits.
        teacher_logits: [B, C] finite teacher logits. Gradients flow into both
            arguments, so pass detached teacher logits.
        softmax_temperature: ``T > 0``.
        skew: Teacher share ``a`` of the mixture, in ``[0, 1]``.

    Returns:
        [B] divergences >= 0, in float32 or wider.

    Raises:
        ValueError: If ``T`` is not a finite number > 0, ``skew`` is outside
            ``[0, 1]`` or the shapes differ.
    """
    if not 0.0 <= skew <= 1.0:
        raise ValueError(f"skew must be in [0, 1], got {skew!r}")
    student_log_probs, teacher_log_probs = _softened_log_probs(
        student_logits, teacher_logits, softmax_temperature
    )
    # math.log(0) raises, so the ends of the range use the pure distributions.
    if skew == 0.0:
        mixture_log_probs = student_log_probs
    elif skew == 1.0:
        mixture_log_probs = teacher_log_probs
    else:
        mixture_log_probs = torch.logaddexp(
            teacher_log_probs + math.log(skew), student_log_probs + math.log1p(-skew)
        )
    return softmax_temperature**2 * _kl_from_log_probs(teacher_log_probs, mixture_log_probs)


LogitLoss = Callable[..., Tensor]

# Name -> per-example divergence ``f(student_logits, teacher_logits,
# softmax_temperature, **options) -> [B]``, already multiplied by T**2.
LOGIT_LOSSES: dict[str, LogitLoss] = {
    "forward_kl": forward_kl_per_example,
    "reverse_kl": reverse_kl_per_example,
    "jensen_shannon": jensen_shannon_per_example,
    "skew_kl": skew_kl_per_example,
}


def get_logit_loss(name: str) -> LogitLoss:
    """Look up a per-example logit divergence in `LOGIT_LOSSES` by name.

    Raises:
        ValueError: If ``name`` is not a key of `LOGIT_LOSSES`. The message
            lists the valid names.
    """
    try:
        return LOGIT_LOSSES[name]
    except KeyError:
        valid_names = ", ".join(sorted(LOGIT_LOSSES))
        raise ValueError(
            f"unknown logit loss {name!r}. Valid names are: {valid_names}"
        ) from None


def per_example_kd(
    name: str,
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    **options: float,
) -> Tensor:
    """Compute the named divergence per example, unreduced and times ``T**2``.

    Args:
        name: A key of `LOGIT_LOSSES`.
        student_logits: [B, C] student logits.
        teacher_logits: [B, C] teacher logits.
        softmax_temperature: ``T > 0``.
        **options: Extra keyword arguments of the divergence, such as
            ``skew`` for ``"skew_kl"``.

    Returns:
        [B] divergences >= 0.

    Raises:
        ValueError: For an unknown name or invalid inputs.
    """
    return get_logit_loss(name)(student_logits, teacher_logits, softmax_temperature, **options)


# ---------------------------------------------------------------------------
# Batch-reduced logit divergences
# ---------------------------------------------------------------------------


def forward_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    example_weights: Tensor | None = None,
) -> Tensor:
    """Compute the batch KD loss ``T**2 * sum_i w_i * KL(p_teacher_T,i || p_student_T,i) / B``.

    Each KL is summed over the C classes, not averaged over them, and the sum
    over the batch is divided by ``B`` rather than by ``sum_i w_i``.

    Args:
        student_logits: [B, C] student logits.
        teacher_logits: [B, C] teacher logits, detached by the caller.
        softmax_temperature: ``T > 0``.
        example_weights: [B] weights ``w_i``, or None for ``w_i = 1`` (the
            plain batch mean).

    Returns:
        Scalar loss.

    Raises:
        ValueError: If ``T`` is not a finite number > 0, the batch is empty
            or a shape is wrong.
    """
    per_example = forward_kl_per_example(student_logits, teacher_logits, softmax_temperature)
    return _weighted_batch_mean(per_example, example_weights)


def reverse_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    example_weights: Tensor | None = None,
) -> Tensor:
    """Compute ``T**2 * sum_i w_i * KL(p_student_T,i || p_teacher_T,i) / B``.

    Args, return value and errors are those of `forward_kl`.
    """
    per_example = reverse_kl_per_example(student_logits, teacher_logits, softmax_temperature)
    return _weighted_batch_mean(per_example, example_weights)


def jensen_shannon(
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    example_weights: Tensor | None = None,
) -> Tensor:
    """Compute ``T**2 * sum_i w_i * JS(p_teacher_T,i, p_student_T,i) / B``.

    See `jensen_shannon_per_example` for the divergence. Args, return value
    and errors are those of `forward_kl`.
    """
    per_example = jensen_shannon_per_example(student_logits, teacher_logits, softmax_temperature)
    return _weighted_batch_mean(per_example, example_weights)


def skew_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    softmax_temperature: float,
    example_weights: Tensor | None = None,
    skew: float = 0.1,
) -> Tensor:
    """Compute ``T**2 * sum_i w_i * KL(p_i || skew * p_i + (1 - skew) * q_i) / B``.

    ``p_i`` and ``q_i`` are the softened teacher and student distributions.
    See `skew_kl_per_example` for the source and the range of ``skew``.
    Args, return value and errors are otherwise those of `forward_kl`.
    """
    per_example = skew_kl_per_example(
        student_logits, teacher_logits, softmax_temperature, skew=skew
    )
    return _weighted_batch_mean(per_example, example_weights)


# ---------------------------------------------------------------------------
# Per-language KD weights and the combined distillation loss
# ---------------------------------------------------------------------------


def language_kd_weights(lang_proportions: Tensor, kd_weight: Tensor) -> Tensor:
    """Mix per-language KD weights by each example's language proportions.

    ``kd_weight(x) = sum_l p_l(x) * w[l]``, a matrix-vector product. When the
    proportions of an example sum to 1 the result is a convex combination of
    the language weights. The rows are not renormalized, so an example whose
    proportions sum to ``s`` gets ``s`` times that. An example whose
    proportions are all 0, such as one with only untagged tokens, gets 0.

    Args:
        lang_proportions: [B, L] token proportion of each language per example,
            columns in the order of `rlkd.constants.LANGS`.
        kd_weight: [L] KD weight of each language, same order.

    Returns:
        [B] per-example KD weights in the dtype and device of
        ``lang_proportions``.

    Raises:
        ValueError: If the shapes do not match.
    """
    if lang_proportions.ndim != 2 or kd_weight.shape != (lang_proportions.shape[1],):
        raise ValueError(
            "lang_proportions must have shape [batch, languages] and kd_weight shape "
            f"[languages], got {tuple(lang_proportions.shape)} and {tuple(kd_weight.shape)}"
        )
    weights = kd_weight.to(dtype=lang_proportions.dtype, device=lang_proportions.device)
    return lang_proportions @ weights


@dataclass(frozen=True)
class DistillationLoss:
    """Terms of one distillation step.

    ``total = kd_coefficient * kd + ce_weight * ce``. Only ``total``, ``kd``
    and ``ce`` carry gradients.
    """

    total: Tensor
    """Scalar loss to backpropagate."""
    kd: Tensor
    """Scalar ``mean_i(kd_weight(x_i) * D_T(x_i))``, before ``kd_coefficient``."""
    ce: Tensor
    """Scalar batch mean of the cross-entropy of the student logits against the labels."""
    per_example_kd: Tensor
    """[B] unweighted divergences ``D_T(x_i)`` (already times ``T**2``), detached."""
    per_example_ce: Tensor
    """[B] cross-entropy of each example, detached."""


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    lang_proportions: Tensor,
    kd_weight: Tensor,
    *,
    softmax_temperature: float,
    ce_weight: float,
    kd_coefficient: float = 1.0,
    loss_name: str = "forward_kl",
    loss_options: Mapping[str, float] | None = None,
) -> DistillationLoss:
    """Combine the language-weighted KD term with the label cross-entropy.

    ``total = kd_coefficient * mean_i(kd_weight(x_i) * D_T(x_i))
    + ce_weight * mean_i(CE(z_i, y_i))``, where ``D_T`` is the named
    divergence times ``T**2`` (see `LOGIT_LOSSES`), ``kd_weight(x_i)`` comes
    from `language_kd_weights` and the cross-entropy uses the student logits
    ``z_i`` at temperature 1. Both means divide by ``B``.

    The teacher logits are detached here, so no gradient reaches the teacher
    through this loss.

    Args:
        student_logits: [B, C] student logits.
        teacher_logits: [B, C] teacher logits.
        labels: [B] class ids in ``[0, C)``.
        lang_proportions: [B, L] language token proportions per example.
        kd_weight: [L] KD weight of each language.
        softmax_temperature: ``T > 0`` of the KD term.
        ce_weight: Weight of the cross-entropy term.
        kd_coefficient: Global factor on the KD term.
        loss_name: A key of `LOGIT_LOSSES`.
        loss_options: Extra keyword arguments of the divergence, such as
            ``{"skew": 0.1}`` for ``"skew_kl"``.

    Returns:
        The terms as a `DistillationLoss`.

    Raises:
        ValueError: For an unknown loss name, ``T <= 0`` or mismatched shapes.
    """
    if labels.shape != (student_logits.shape[0],):
        raise ValueError(
            f"labels must have shape [{student_logits.shape[0]}] (one class id per example), "
            f"got {tuple(labels.shape)}"
        )

    divergences = per_example_kd(
        loss_name,
        student_logits,
        teacher_logits.detach(),
        softmax_temperature,
        **(loss_options or {}),
    )
    example_weights = language_kd_weights(
        lang_proportions.to(divergences.device), kd_weight.to(divergences.device)
    )
    kd = _weighted_batch_mean(divergences, example_weights)

    ce_logits = student_logits.to(_compute_dtype(student_logits))
    per_example_ce = F.cross_entropy(ce_logits, labels, reduction="none")
    ce = per_example_ce.mean()

    return DistillationLoss(
        total=kd_coefficient * kd + ce_weight * ce,
        kd=kd,
        ce=ce,
        per_example_kd=divergences.detach(),
        per_example_ce=per_example_ce.detach(),
    )


# ---------------------------------------------------------------------------
# Frozen teacher
# ---------------------------------------------------------------------------


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode and turn off gradients for its parameters.

    Eval mode turns off dropout, so the same input gives the same output. A
    later ``module.train()`` turns dropout back on, which is why
    `frozen_teacher_logits` calls ``eval()`` again on every call.

    Returns:
        ``module``, for chaining.
    """
    module.eval()
    module.requires_grad_(False)
    return module


def frozen_teacher_logits(teacher: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Run the teacher in eval mode without autograd and return its logits.

    The teacher is left in eval mode. It is run under ``torch.no_grad()``
    rather than ``torch.inference_mode()`` because inference tensors cannot
    be saved for backward or updated in place outside inference mode, and
    callers may do either with the returned logits.

    Args:
        teacher: A Hugging Face sequence classifier, or any module that
            accepts ``input_ids`` and ``attention_mask`` keyword arguments and
            returns an object with a ``logits`` attribute.
        input_ids: [B, S] token ids.
        attention_mask: [B, S], 1 for real tokens and 0 for padding.

    Returns:
        [B, C] logits with ``requires_grad=False``.
    """
    teacher.eval()
    with torch.no_grad():
        outputs = teacher(input_ids=input_ids, attention_mask=attention_mask)
    return outputs.logits


# ---------------------------------------------------------------------------
# Hidden-state alignment
# ---------------------------------------------------------------------------


def _normalize_layer_map(
    layer_map: Mapping[int, int] | Sequence[tuple[int, int]],
) -> tuple[tuple[int, int], ...]:
    pairs = tuple(layer_map.items()) if isinstance(layer_map, Mapping) else tuple(layer_map)
    if not pairs:
        raise ValueError("layer_map is empty. Map at least one student layer to a teacher layer")
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(index, int) and index >= 0 for index in pair):
            raise ValueError(
                "layer_map entries must be (student_layer, teacher_layer) pairs of "
                f"non-negative ints, got {pair!r}"
            )
    return tuple((int(student), int(teacher)) for student, teacher in pairs)


class HiddenStateAlignment(nn.Module):
    """Masked MSE between mapped student and teacher hidden states.

    For a mapped pair ``(s, t)`` and example ``b`` with real-token mask
    ``m_b`` (1 for real tokens, 0 for padding) and ``n_b = sum_j m_bj``:

        ``mse_b(s, t) = sum_j m_bj * ||P_st(hS_s[b, j]) - hT_t[b, j]||^2 / (n_b * H_t)``

    that is, the mean squared error over the example's real tokens and the
    teacher's hidden dimensions. The per-example loss is the mean of
    ``mse_b`` over the K mapped pairs, and `forward` returns
    ``sum_b w_b * loss_b / B``. Padding positions get no weight, so an
    example's loss does not depend on how far the batch is padded. An example
    without real tokens gets loss 0.

    ``P_st`` is a separate learned ``nn.Linear(H_s, H_t)`` for each mapped
    pair when the widths differ, and ``nn.Identity`` when they are equal.

    Layer indices index the hidden-state sequences as given. For Hugging
    Face models called with ``output_hidden_states=True``, index 0 is the
    embedding output and index ``i`` the output of layer ``i``. Student and
    teacher must use the same tokenizer, because position ``j`` of both
    sequences is compared. Teacher hidden states are detached.

    Args:
        student_hidden_size: Student width ``H_s``.
        teacher_hidden_size: Teacher width ``H_t``.
        layer_map: Student layer -> teacher layer, as a dict or a sequence of
            ``(student_layer, teacher_layer)`` pairs with non-negative indices.

    Raises:
        ValueError: If a width is not a positive int or ``layer_map`` is empty
            or malformed.
    """

    def __init__(
        self,
        student_hidden_size: int,
        teacher_hidden_size: int,
        layer_map: Mapping[int, int] | Sequence[tuple[int, int]],
    ) -> None:
        super().__init__()
        for name, size in (
            ("student_hidden_size", student_hidden_size),
            ("teacher_hidden_size", teacher_hidden_size),
        ):
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"{name} must be a positive int, got {size!r}")

        self.student_hidden_size = student_hidden_size
        self.teacher_hidden_size = teacher_hidden_size
        self.layer_pairs = _normalize_layer_map(layer_map)
        self.projections = nn.ModuleList(
            nn.Identity()
            if student_hidden_size == teacher_hidden_size
            else nn.Linear(student_hidden_size, teacher_hidden_size)
            for _ in self.layer_pairs
        )

    def _check_inputs(
        self,
        student_hidden_states: Sequence[Tensor],
        teacher_hidden_states: Sequence[Tensor],
        attention_mask: Tensor,
    ) -> None:
        if attention_mask.ndim != 2:
            raise ValueError(
                f"attention_mask must have shape [batch, sequence], got {tuple(attention_mask.shape)}"
            )
        batch_size, sequence_length = attention_mask.shape
        for student_layer, teacher_layer in self.layer_pairs:
            for role, states, layer, width in (
                ("student", student_hidden_states, student_layer, self.student_hidden_size),
                ("teacher", teacher_hidden_states, teacher_layer, self.teacher_hidden_size),
            ):
                if layer >= len(states):
                    raise ValueError(
                        f"layer_map uses {role} layer {layer}, but only {len(states)} "
                        f"{role} hidden states were passed"
                    )
                expected_shape = (batch_size, sequence_length, width)
                if tuple(states[layer].shape) != expected_shape:
                    raise ValueError(
                        f"{role} hidden state {layer} must have shape {expected_shape}, "
                        f"got {tuple(states[layer].shape)}"
                    )

    def per_example_loss(
        self,
        student_hidden_states: Sequence[Tensor],
        teacher_hidden_states: Sequence[Tensor],
        attention_mask: Tensor,
    ) -> Tensor:
        """Compute each example's masked MSE, averaged over the mapped layers.

        Args:
            student_hidden_states: Sequence of [B, S, H_s] tensors.
            teacher_hidden_states: Sequence of [B, S, H_t] tensors.
            attention_mask: [B, S], nonzero for real tokens and 0 for padding.

        Returns:
            [B] losses, ``mean_k mse_b(s_k, t_k)``.

        Raises:
            ValueError: If a mapped layer is missing or a shape is wrong.
        """
        self._check_inputs(student_hidden_states, teacher_hidden_states, attention_mask)

        per_pair_losses = []
        for projection, (student_layer, teacher_layer) in zip(self.projections, self.layer_pairs):
            projected = projection(student_hidden_states[student_layer])
            target = teacher_hidden_states[teacher_layer].detach()
            difference = projected - target
            difference = difference.to(_compute_dtype(difference))

            mask = (attention_mask != 0).to(difference.dtype)
            # clamp(min=1) turns 0 / 0 into 0 for an example without real tokens.
            token_counts = mask.sum(dim=1).clamp(min=1.0)
            squared_error = difference.pow(2).sum(dim=-1)  # [B, S]
            masked_sum = (squared_error * mask).sum(dim=1)  # [B]
            per_pair_losses.append(masked_sum / (token_counts * self.teacher_hidden_size))

        return torch.stack(per_pair_losses).mean(dim=0)

    def forward(
        self,
        student_hidden_states: Sequence[Tensor],
        teacher_hidden_states: Sequence[Tensor],
        attention_mask: Tensor,
        example_weights: Tensor | None = None,
    ) -> Tensor:
        """Compute the batch loss ``sum_b w_b * loss_b / B``.

        Args:
            student_hidden_states: Sequence of [B, S, H_s] tensors.
            teacher_hidden_states: Sequence of [B, S, H_t] tensors.
            attention_mask: [B, S], nonzero for real tokens and 0 for padding.
            example_weights: [B] weights ``w_b``, or None for ``w_b = 1``.

        Returns:
            Scalar loss.

        Raises:
            ValueError: If a mapped layer is missing, a shape is wrong or the
                batch is empty.
        """
        per_example = self.per_example_loss(
            student_hidden_states, teacher_hidden_states, attention_mask
        )
        return _weighted_batch_mean(per_example, example_weights)
