"""Hidden-state distillation: a student that aligns its hidden states with a frozen teacher's.

With `distill.loss: hidden_alignment` the KD term of an example is the
masked MSE between mapped student and teacher hidden states (through a
learned projection when widths differ), instead of a divergence between
cached teacher logits. The teacher therefore runs online, frozen, inside
the same module as the student. DistributedDataParallel then treats the
projection parameters as part of the model and synchronises their gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlkd.losses import HiddenStateAlignment, freeze

HIDDEN_ALIGNMENT = "hidden_alignment"


def even_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Map student layer i to teacher layer round(i * teacher_layers / student_layers), for i = 1..student_layers.

    Indices count `hidden_states` outputs of Hugging Face models, where 0 is
    the embedding output, so the last student layer meets the last teacher layer.
    """
    return [(layer, round(layer * teacher_layers / student_layers)) for layer in range(1, student_layers + 1)]


@dataclass
class AlignedOutput:
    logits: Tensor  # [B, C]
    hidden_loss: Tensor | None  # [B] per-example alignment loss; None in eval mode


class AlignedStudent(nn.Module):
    """A student, its frozen teacher and the alignment projections, as one module."""

    def __init__(self, student: nn.Module, teacher: nn.Module, layer_map: list[tuple[int, int]] | None = None):
        super().__init__()
        self.student = student
        self.teacher = freeze(teacher)
        student_layers = student.config.num_hidden_layers
        teacher_layers = teacher.config.num_hidden_layers
        layer_map = layer_map or even_layer_map(student_layers, teacher_layers)
        for student_layer, teacher_layer in layer_map:
            if not (0 <= student_layer <= student_layers and 0 <= teacher_layer <= teacher_layers):
                raise ValueError(
                    f"invalid distill.layer_map entry [{student_layer}, {teacher_layer}]: the student has hidden "
                    f"states 0..{student_layers} and the teacher 0..{teacher_layers}"
                )
        self.alignment = HiddenStateAlignment(student.config.hidden_size, teacher.config.hidden_size, layer_map)

    def train(self, mode: bool = True) -> "AlignedStudent":
        super().train(mode)
        self.teacher.eval()  # dropout stays off in the teacher, whatever mode the student is in
        return self

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> AlignedOutput:
        if not self.training:
            return AlignedOutput(self.student(input_ids=input_ids, attention_mask=attention_mask).logits, None)

        student_outputs = self.student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        with torch.no_grad():
            teacher_outputs = self.teacher(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden_loss = self.alignment.per_example_loss(
            student_outputs.hidden_states, teacher_outputs.hidden_states, attention_mask
        )
        return AlignedOutput(student_outputs.logits, hidden_loss)
