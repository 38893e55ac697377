"""Accuracy and macro-F1 per language from confusion matrices.

Confusion matrices are summed across Ray Train ranks before scoring, so
every rank and the final evaluation compute scores from the same counts.
"""

from __future__ import annotations

import math

import numpy as np

from rlkd.constants import LABELS, LANGS

ALL = "all"
SCOPES: tuple[str, ...] = (*LANGS, ALL)


def confusion_by_language(labels: np.ndarray, predictions: np.ndarray, language_index: np.ndarray) -> np.ndarray:
    """Count [len(LANGS), C, C] confusion matrices: row = gold label, column = prediction."""
    num_classes = len(LABELS)
    confusion = np.zeros((len(LANGS), num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (language_index, labels, predictions), 1)
    return confusion


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes that occur as gold label or prediction.

    This is scikit-learn's `f1_score(average="macro")` when `labels` is not
    given; it returns NaN for an empty matrix.
    """
    true_positive = np.diag(confusion).astype(float)
    gold = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = (gold + predicted) > 0
    if not present.any():
        return math.nan
    f1 = 2 * true_positive[present] / (gold[present] + predicted[present])
    return float(f1.mean())


def accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else math.nan


def scores_by_scope(confusion: np.ndarray) -> dict[str, dict[str, float]]:
    """Return {scope: {"n", "accuracy", "macro_f1"}} for each language and for all languages pooled."""
    result: dict[str, dict[str, float]] = {}
    for index, lang in enumerate(LANGS):
        result[lang] = _scores(confusion[index])
    result[ALL] = _scores(confusion.sum(axis=0))
    return result


def _scores(confusion: np.ndarray) -> dict[str, float]:
    return {"n": int(round(float(confusion.sum()))), "accuracy": accuracy(confusion), "macro_f1": macro_f1(confusion)}


def worst_language_f1(scores: dict[str, dict[str, float]]) -> float:
    """Lowest macro-F1 among languages that have examples; NaN when none has."""
    values = [scores[lang]["macro_f1"] for lang in LANGS if scores[lang]["n"] > 0]
    return min(values) if values else math.nan
