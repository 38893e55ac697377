"""Tokenised splits as plain arrays, and padded batches built from them.

Splits travel to Ray Train workers through the object store as
`EncodedSplit` objects: numpy arrays only, so they pickle small and fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from rlkd.constants import LANGS, PROPORTION_COLUMNS


@dataclass
class EncodedSplit:
    ids: np.ndarray  # [N] str
    input_ids: list[np.ndarray]  # N arrays of int32 token ids, unpadded
    labels: np.ndarray  # [N] int64
    lang_proportions: np.ndarray  # [N, L] float32, rows sum to 1
    language_index: np.ndarray  # [N] int64 index of the dominant language in LANGS
    teacher_logits: np.ndarray | None = None  # [N, C] float32, aligned with ids

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: np.ndarray) -> "EncodedSplit":
        return EncodedSplit(
            ids=self.ids[indices],
            input_ids=[self.input_ids[i] for i in indices],
            labels=self.labels[indices],
            lang_proportions=self.lang_proportions[indices],
            language_index=self.language_index[indices],
            teacher_logits=None if self.teacher_logits is None else self.teacher_logits[indices],
        )

    def with_teacher_logits(self, logits_by_id: dict[str, np.ndarray]) -> "EncodedSplit":
        missing = [example_id for example_id in self.ids if example_id not in logits_by_id]
        if missing:
            raise ValueError(f"teacher logits missing for {len(missing)} examples, first: {missing[0]}")
        logits = np.stack([logits_by_id[example_id] for example_id in self.ids]).astype(np.float32)
        return EncodedSplit(self.ids, self.input_ids, self.labels, self.lang_proportions, self.language_index, logits)


def encode_split(frame: pd.DataFrame, tokenizer, max_length: int) -> EncodedSplit:
    encoded = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
    language_index = frame["dominant_lang"].map({lang: index for index, lang in enumerate(LANGS)})
    return EncodedSplit(
        ids=frame["id"].to_numpy(dtype=str),
        input_ids=[np.asarray(ids, dtype=np.int32) for ids in encoded["input_ids"]],
        labels=frame["label"].to_numpy(dtype=np.int64),
        lang_proportions=frame[list(PROPORTION_COLUMNS)].to_numpy(dtype=np.float32),
        language_index=language_index.to_numpy(dtype=np.int64),
    )


def collate(split: EncodedSplit, indices: np.ndarray, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad the examples at `indices` to the longest one in the batch (dynamic padding)."""
    sequences = [split.input_ids[i] for i in indices]
    width = max(len(sequence) for sequence in sequences)
    input_ids = np.full((len(sequences), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = sequence
        attention_mask[row, : len(sequence)] = 1

    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "labels": torch.from_numpy(split.labels[indices]),
        "lang_proportions": torch.from_numpy(split.lang_proportions[indices]),
        "language_index": torch.from_numpy(split.language_index[indices]),
    }
    if split.teacher_logits is not None:
        batch["teacher_logits"] = torch.from_numpy(split.teacher_logits[indices])
    return batch


def batch_indices(num_examples: int, batch_size: int, *, shuffle_seed: int | None = None) -> list[np.ndarray]:
    """Split range(num_examples) into batches, in a seeded shuffled order when `shuffle_seed` is set."""
    order = np.arange(num_examples)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(num_examples)
    return [order[start : start + batch_size] for start in range(0, num_examples, batch_size)]


def length_bucketed_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, *,
                            bucket_batches: int = 50, seed: int = 0) -> list[np.ndarray]:
    """Cut `order` into batches of similar length, then shuffle the batches.

    Windows of `bucket_batches * batch_size` consecutive examples of `order`
    are sorted by length and cut into batches, so each batch pads to a
    length close to its own examples' lengths while the window keeps the
    shuffle random. Returns full batches only; the tail of the last window
    that does not fill a batch is dropped, as a shuffled epoch would drop it.
    """
    window = batch_size * bucket_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size))
    permutation = np.random.default_rng(seed).permutation(len(batches))
    return [batches[i] for i in permutation]
