"""One optimisation step of the weighted KD objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlkd.losses import DistillationLoss, distillation_loss

MAX_GRAD_NORM = 1.0
WEIGHT_DECAY = 0.01


def build_optimizer(model: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)


@dataclass(frozen=True)
class LossSettings:
    loss_name: str
    softmax_temperature: float
    kd_coefficient: float  # 0 turns distillation off (the `none` method and the teacher)
    ce_weight: float


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], kd_weight: torch.Tensor,
                 settings: LossSettings) -> DistillationLoss:
    student_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    teacher_logits = batch.get("teacher_logits")
    kd_coefficient = settings.kd_coefficient
    if teacher_logits is None:
        if kd_coefficient > 0:
            raise ValueError("kd_coefficient > 0 but the batch has no teacher logits")
        # Without a teacher the KD term is 0 by construction; the student's own
        # logits stand in so that the loss function keeps one code path.
        teacher_logits = student_logits.detach()
    return distillation_loss(
        student_logits,
        teacher_logits,
        batch["labels"],
        batch["lang_proportions"],
        kd_weight,
        softmax_temperature=settings.softmax_temperature,
        ce_weight=settings.ce_weight,
        kd_coefficient=kd_coefficient,
        loss_name=settings.loss_name,
    )


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
                  kd_weight: torch.Tensor, settings: LossSettings,
                  scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> DistillationLoss:
    loss = compute_loss(model, batch, kd_weight, settings)
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss
