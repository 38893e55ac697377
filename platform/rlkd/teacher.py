"""The teacher stage: fine-tune once, cache the model and its logits per example id, reuse both.

A fine-tuned teacher is stored under `<cache>/teachers/<key>/`, where the
key hashes the teacher config, the data (ids and labels of every split),
the tokenisation length, the seed and the number of workers. Any later run
with the same key loads it instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch
from tqdm.auto import tqdm

from rlkd.config import RunConfig
from rlkd.constants import LABELS
from rlkd.models import count_parameters, load_classifier, resolve_backbone
from rlkd.train.encoding import EncodedSplit, batch_indices, collate
from rlkd.train.loop import LoopSettings
from rlkd.train.runner import fit
from rlkd.train.step import LossSettings

logger = logging.getLogger(__name__)

LOGITS_FILE = "teacher_logits.parquet"
META_FILE = "teacher.json"


@dataclass
class Teacher:
    model_dir: Path
    logits_by_id: dict[str, np.ndarray]
    num_parameters: int
    train_seconds: float  # 0 when the teacher came from the cache or a given checkpoint
    cached: bool


def _data_fingerprint(encoded: dict[str, EncodedSplit]) -> str:
    digest = hashlib.sha256()
    for name in sorted(encoded):
        split = encoded[name]
        digest.update(name.encode())
        digest.update("\n".join(split.ids.tolist()).encode())
        digest.update(split.labels.tobytes())
    return digest.hexdigest()


def teacher_key(config: RunConfig, encoded: dict[str, EncodedSplit]) -> str:
    parts = {
        "teacher": asdict(config.teacher),
        "max_length": config.data.max_length,
        "seed": config.seed,
        "num_workers": config.scaling.num_workers,
        "data": _data_fingerprint(encoded),
    }
    if config.teacher.checkpoint:
        checkpoint = Path(config.teacher.checkpoint)
        parts["checkpoint_mtime"] = max((p.stat().st_mtime for p in checkpoint.rglob("*")), default=0.0)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@torch.inference_mode()
def compute_logits(model: torch.nn.Module, split: EncodedSplit, pad_token_id: int, *, batch_size: int = 128,
                   description: str = "teacher logits") -> np.ndarray:
    """Run the frozen teacher (eval mode, no gradients) over a split; return [N, C] float32 logits."""
    model.eval()
    outputs = np.zeros((len(split), len(LABELS)), dtype=np.float32)
    # Sorting by length keeps padding small; results are written back in the original order.
    order = np.argsort([len(ids) for ids in split.input_ids], kind="stable")
    for positions in tqdm(batch_indices(len(order), batch_size), desc=description, leave=False):
        indices = order[positions]
        batch = collate(split, indices, pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        outputs[indices] = logits.float().numpy()
    return outputs


def prepare_teacher(config: RunConfig, encoded: dict[str, EncodedSplit], splits_ref: ray.ObjectRef,
                    pad_token_id: int, *, cache_dir: Path, storage_path: str | Path, run_name: str) -> Teacher:
    """Return the teacher for this data and config: from the cache, a given checkpoint, or fine-tuned now."""
    key = teacher_key(config, encoded)
    directory = Path(cache_dir) / "teachers" / key
    model_dir = directory / "model"
    logits_path = directory / LOGITS_FILE

    if logits_path.is_file() and model_dir.is_dir():
        logger.info("teacher: reusing %s", directory)
        model = load_classifier(str(model_dir), num_labels_required=True)
        return Teacher(model_dir, _read_logits(logits_path), count_parameters(model), 0.0, cached=True)

    started = time.perf_counter()
    if config.teacher.checkpoint:
        source = config.teacher.checkpoint
        logger.info("teacher: loading the fine-tuned checkpoint %s", source)
        model = load_classifier(source, num_labels_required=True)
        train_seconds = 0.0
    else:
        source = resolve_backbone(config.teacher.backbone)
        logger.info("teacher: fine-tuning %s on %d examples", source, len(encoded["train"]))
        settings = LoopSettings(
            method="teacher",
            model_source=source,
            student_config=None,
            seed=config.seed,
            epochs=config.teacher.epochs,
            max_steps=config.teacher.max_steps,
            batch_size=config.teacher.batch_size,
            learning_rate=config.teacher.learning_rate,
            loss=LossSettings(config.distill.loss, config.distill.softmax_temperature, kd_coefficient=0.0, ce_weight=1.0),
            kd_weight_init=list(config.distill.kd_weight_init),
            decision_interval=10**9,  # the teacher is scored once, at its last step
            eval_examples=config.distill.eval_examples,
            torch_threads=config.scaling.threads_per_worker,
            pad_token_id=pad_token_id,
        )
        staging_model = directory.with_name(key + ".partial") / "model"
        result = fit(settings, splits_ref, config.scaling, storage_path=storage_path,
                     run_name=f"{run_name}-teacher", output_dir=staging_model)
        model = load_classifier(str(result.checkpoint_dir), num_labels_required=True)
        train_seconds = time.perf_counter() - started

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    logits_by_id: dict[str, np.ndarray] = {}
    for name, split in encoded.items():
        logits = compute_logits(model, split, pad_token_id, description=f"teacher logits ({name})")
        logits_by_id.update(zip(split.ids.tolist(), logits))

    _store(directory, model, source, logits_by_id, train_seconds)
    return Teacher(model_dir, logits_by_id, count_parameters(model), train_seconds, cached=False)


def _store(directory: Path, model, source: str, logits_by_id: dict[str, np.ndarray], train_seconds: float) -> None:
    """Write model, logits and metadata into a staging folder, then rename it into place."""
    staging = directory.with_name(directory.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    if not (staging / "model").is_dir():
        model.save_pretrained(staging / "model")
    ids = list(logits_by_id)
    logits = np.stack([logits_by_id[example_id] for example_id in ids])
    frame = pd.DataFrame({"id": ids, **{f"logit_{label}": logits[:, index] for index, label in enumerate(LABELS)}})
    frame.to_parquet(staging / LOGITS_FILE, index=False)
    (staging / META_FILE).write_text(json.dumps({"source": source, "train_seconds": train_seconds}, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)


def _read_logits(path: Path) -> dict[str, np.ndarray]:
    frame = pd.read_parquet(path)
    logits = frame[[f"logit_{label}" for label in LABELS]].to_numpy(dtype=np.float32)
    return dict(zip(frame["id"].tolist(), logits))
