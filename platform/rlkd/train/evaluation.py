"""Per-language dev metrics of a student, summed across Ray Train ranks.

Each rank scores its own shard of the dev examples. The raw counts and
loss sums are then all-reduced, so every rank ends with the same metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from rlkd.constants import LABELS, LANGS
from rlkd.losses import per_example_kd
from rlkd.scores import ALL, confusion_by_language, scores_by_scope, worst_language_f1
from rlkd.train.encoding import EncodedSplit, batch_indices, collate


@dataclass
class DevCounts:
    """Sums that add up across ranks: confusion matrices and per-language loss sums."""

    confusion: np.ndarray  # [L, C, C]
    soft_confusion: np.ndarray  # [L, C, C] sums of predicted probabilities per gold label
    kd_loss_sum: np.ndarray  # [L]
    ce_loss_sum: np.ndarray  # [L]
    agreement: np.ndarray  # [L] examples where student and teacher predict the same class
    with_teacher: np.ndarray  # [L] examples that have teacher logits

    def to_tensor(self) -> torch.Tensor:
        parts = [self.confusion.reshape(-1), self.soft_confusion.reshape(-1), self.kd_loss_sum, self.ce_loss_sum, self.agreement, self.with_teacher]
        return torch.from_numpy(np.concatenate([part.astype(np.float64) for part in parts]))

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor) -> "DevCounts":
        values = tensor.numpy()
        num_langs, num_classes = len(LANGS), len(LABELS)
        size = num_langs * num_classes * num_classes
        confusion = values[:size].reshape(num_langs, num_classes, num_classes).round().astype(np.int64)
        soft_confusion = values[size : 2 * size].reshape(num_langs, num_classes, num_classes)
        rest = values[2 * size :].reshape(4, num_langs)
        return cls(confusion, soft_confusion, rest[0], rest[1], rest[2], rest[3])


def count_predictions(
    model: torch.nn.Module,
    split: EncodedSplit,
    indices: np.ndarray,
    *,
    pad_token_id: int,
    softmax_temperature: float,
    kd_loss_name: str,
    batch_size: int = 128,
) -> DevCounts:
    """Run `model` on split[indices] and count predictions and losses per dominant language."""
    counts, _ = count_predictions_with_subset(
        model, split, indices, np.zeros(0, dtype=np.int64), pad_token_id=pad_token_id,
        softmax_temperature=softmax_temperature, kd_loss_name=kd_loss_name, batch_size=batch_size,
    )
    return counts


@torch.inference_mode()
def count_predictions_with_subset(
    model: torch.nn.Module,
    split: EncodedSplit,
    indices: np.ndarray,
    subset: np.ndarray,
    *,
    pad_token_id: int,
    softmax_temperature: float,
    kd_loss_name: str,
    batch_size: int = 128,
) -> tuple[DevCounts, DevCounts]:
    """Count as `count_predictions` does, over split[indices] and also over the examples of `indices` in `subset`.

    One forward pass gives both, so the probes' reward slice is scored with the dev evaluation.
    """
    counts, subset_counts = _empty_counts(), _empty_counts()

    # Counts are sums, so the order is free: sorted by length, batches pad little.
    indices = np.asarray(indices)
    indices = indices[np.argsort([len(split.input_ids[index]) for index in indices], kind="stable")]
    in_subset = np.isin(indices, subset)
    was_training = model.training
    model.eval()
    for positions in batch_indices(len(indices), batch_size):
        batch = collate(split, indices[positions], pad_token_id)
        student_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        _add_batch(counts, batch, student_logits, softmax_temperature, kd_loss_name)
        rows = np.flatnonzero(in_subset[positions])
        if len(rows):
            rows_tensor = torch.from_numpy(rows)
            subset_batch = {name: values[rows_tensor] for name, values in batch.items()}
            _add_batch(subset_counts, subset_batch, student_logits[rows_tensor], softmax_temperature, kd_loss_name)
    model.train(was_training)
    return counts, subset_counts


def _empty_counts() -> DevCounts:
    num_langs = len(LANGS)
    return DevCounts(
        confusion=np.zeros((num_langs, len(LABELS), len(LABELS)), dtype=np.int64),
        soft_confusion=np.zeros((num_langs, len(LABELS), len(LABELS))),
        kd_loss_sum=np.zeros(num_langs),
        ce_loss_sum=np.zeros(num_langs),
        agreement=np.zeros(num_langs),
        with_teacher=np.zeros(num_langs),
    )


def _add_batch(counts: DevCounts, batch: dict[str, torch.Tensor], student_logits: torch.Tensor,
               softmax_temperature: float, kd_loss_name: str) -> None:
    predictions = student_logits.argmax(dim=-1)
    language_index = batch["language_index"].numpy()

    counts.confusion += confusion_by_language(batch["labels"].numpy(), predictions.numpy(), language_index)
    probabilities = torch.softmax(student_logits, dim=-1).numpy()
    np.add.at(counts.soft_confusion, (language_index, batch["labels"].numpy()), probabilities)
    ce = F.cross_entropy(student_logits, batch["labels"], reduction="none").numpy()
    np.add.at(counts.ce_loss_sum, language_index, ce)

    if "teacher_logits" in batch:
        teacher_logits = batch["teacher_logits"]
        kd = per_example_kd(kd_loss_name, student_logits, teacher_logits, softmax_temperature).numpy()
        agree = (teacher_logits.argmax(dim=-1) == predictions).numpy().astype(float)
        np.add.at(counts.kd_loss_sum, language_index, kd)
        np.add.at(counts.agreement, language_index, agree)
        np.add.at(counts.with_teacher, language_index, 1.0)


def all_reduce_counts(counts: DevCounts) -> DevCounts:
    """Sum counts over every Ray Train rank; a no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return counts
    tensor = counts.to_tensor()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return DevCounts.from_tensor(tensor)


def metrics_from_counts(counts: DevCounts) -> dict[str, float]:
    """Flatten counts into `<metric>/<scope>` keys; a language without examples gets NaN, never a missing key."""
    scores = scores_by_scope(counts.confusion)
    metrics: dict[str, float] = {}
    for scope, values in scores.items():
        metrics[f"n/{scope}"] = float(values["n"])
        metrics[f"accuracy/{scope}"] = values["accuracy"]
        metrics[f"macro_f1/{scope}"] = values["macro_f1"]
    metrics["macro_f1/worst_lang"] = worst_language_f1(scores)

    # Soft macro-F1 counts predicted probabilities instead of argmax hits. It
    # moves with every small change of the model, so probes of a few steps get
    # different scores where hard F1 on a few hundred tweets is often tied.
    soft_scores = scores_by_scope(counts.soft_confusion)
    for scope, values in soft_scores.items():
        metrics[f"soft_macro_f1/{scope}"] = values["macro_f1"]

    examples = counts.confusion.sum(axis=(1, 2)).astype(float)
    for index, lang in enumerate(LANGS):
        metrics[f"ce_loss/{lang}"] = _ratio(counts.ce_loss_sum[index], examples[index])
        metrics[f"kd_loss/{lang}"] = _ratio(counts.kd_loss_sum[index], counts.with_teacher[index])
        metrics[f"agreement/{lang}"] = _ratio(counts.agreement[index], counts.with_teacher[index])
    metrics[f"ce_loss/{ALL}"] = _ratio(counts.ce_loss_sum.sum(), examples.sum())
    metrics[f"kd_loss/{ALL}"] = _ratio(counts.kd_loss_sum.sum(), counts.with_teacher.sum())
    metrics[f"agreement/{ALL}"] = _ratio(counts.agreement.sum(), counts.with_teacher.sum())
    return metrics


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else math.nan
