"""Test-set scores per language, and the comparison report with its plots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; there is no display on training machines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlkd.constants import LANGS
from rlkd.scores import SCOPES, confusion_by_language, scores_by_scope, worst_language_f1
from rlkd.train.encoding import EncodedSplit

RESULT_COLUMNS = ["method", "lang", "n", "accuracy", "macro_f1"]


def score_logits(split: EncodedSplit, logits: np.ndarray) -> dict[str, dict[str, float]]:
    predictions = np.asarray(logits).argmax(axis=-1)
    confusion = confusion_by_language(split.labels, predictions, split.language_index)
    return scores_by_scope(confusion)


def results_rows(method: str, scores: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {"method": method, "lang": scope, "n": scores[scope]["n"],
         "accuracy": scores[scope]["accuracy"], "macro_f1": scores[scope]["macro_f1"]}
        for scope in SCOPES
    ]


@dataclass
class MethodSummary:
    method: str
    scores: dict[str, dict[str, float]]
    num_parameters: int
    wall_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""


def write_results_csv(summaries: list[MethodSummary], path: Path) -> pd.DataFrame:
    rows = [row for summary in summaries for row in results_rows(summary.method, summary.scores)]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    _write_atomic(path, frame.to_csv(index=False, float_format="%.4f"))
    return frame


def _format(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def weight_change(history: list[dict[str, Any]], initial: list[float]) -> tuple[list[float], float]:
    """Return the last applied kd_weight and its L1 distance from the initial vector."""
    if not history:
        return list(initial), 0.0
    final = history[-1]["kd_weight"]
    return list(final), float(np.abs(np.asarray(final) - np.asarray(initial)).sum())


def render_report(summaries: list[MethodSummary], *, kd_weight_init: list[float], test_sizes: dict[str, int],
                  run_settings: dict[str, Any]) -> str:
    lines = ["# rlkd compare report", ""]
    lines.append("Test set: " + ", ".join(f"{lang} {count}" for lang, count in test_sizes.items()) + " tweets "
                 "(dominant language of each tweet).")
    lines.append("")
    lines.append("## Macro-F1 per language (test)")
    lines.append("")
    lines.append("| method | all | " + " | ".join(LANGS) + " | worst language | accuracy (all) |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in LANGS) + " | --- | --- |")
    for summary in summaries:
        scores = summary.scores
        cells = [_format(scores["all"]["macro_f1"])] + [_format(scores[lang]["macro_f1"]) for lang in LANGS]
        cells += [_format(worst_language_f1(scores)), _format(scores["all"]["accuracy"])]
        lines.append(f"| {summary.method} | " + " | ".join(cells) + " |")
    lines.append("")

    lines.append("## Cost")
    lines.append("")
    lines.append("| method | parameters | wall time (s) | notes |")
    lines.append("| --- | --- | --- | --- |")
    for summary in summaries:
        lines.append(f"| {summary.method} | {summary.num_parameters:,} | {summary.wall_seconds:.0f} | {summary.notes} |")
    lines.append("")

    rl = next((summary for summary in summaries if summary.method == "rl"), None)
    if rl is not None:
        final, change = weight_change(rl.history, kd_weight_init)
        lines.append("## Controller")
        lines.append("")
        lines.append("Final kd_weight: " + ", ".join(f"{lang} {value:.3f}" for lang, value in zip(LANGS, final))
                     + " (initial: " + ", ".join(f"{value:.3f}" for value in kd_weight_init)
                     + f"; L1 change {change:.3f}).")
        lines.append("")

    lines.append("## Settings")
    lines.append("")
    for name, value in run_settings.items():
        lines.append(f"- {name}: {value}")
    lines.append("")
    return "\n".join(lines)


def plot_kd_weights(summaries: list[MethodSummary], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    for summary in summaries:
        if not summary.history or summary.method in ("teacher", "none"):
            continue
        # A record at step s carries the weights applied during the interval that ends at s,
        # so each value is drawn back to the previous record ("pre" steps), starting at step 0.
        steps = [0] + [record["step"] for record in summary.history]
        weights = np.asarray([summary.history[0]["kd_weight"]] + [record["kd_weight"] for record in summary.history])
        style = "-" if summary.method == "rl" else "--"
        for index, lang in enumerate(LANGS):
            axes.step(steps, weights[:, index], where="pre", linestyle=style, label=f"{summary.method} {lang}")
    axes.set_xlabel("training step")
    axes.set_ylabel("kd_weight applied")
    axes.set_title("Per-language KD weights during training")
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    _save_figure(figure, path)


def plot_f1_by_language(summaries: list[MethodSummary], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(summaries))
    positions = np.arange(len(SCOPES))
    for offset, summary in enumerate(summaries):
        values = [summary.scores[scope]["macro_f1"] for scope in SCOPES]
        axes.bar(positions + offset * width, values, width, label=summary.method)
    axes.set_xticks(positions + width * (len(summaries) - 1) / 2, SCOPES)
    axes.set_ylabel("test macro-F1")
    axes.set_ylim(0, 1)
    axes.set_title("Macro-F1 by dominant language")
    axes.legend(fontsize=8)
    figure.tight_layout()
    _save_figure(figure, path)


def _save_figure(figure, path: Path) -> None:
    path = Path(path)
    staging = path.with_name(path.stem + ".partial" + path.suffix)
    figure.savefig(staging, dpi=120)
    plt.close(figure)
    staging.replace(path)


def _write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)


def write_report(text: str, path: Path) -> None:
    _write_atomic(path, text)
