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

RESULT_COLUMNS = ["method", "seed", "lang", "n", "accuracy", "macro_f1"]


def score_logits(split: EncodedSplit, logits: np.ndarray) -> dict[str, dict[str, float]]:
    predictions = np.asarray(logits).argmax(axis=-1)
    confusion = confusion_by_language(split.labels, predictions, split.language_index)
    return scores_by_scope(confusion)


def results_rows(method: str, seed: int, scores: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {"method": method, "seed": seed, "lang": scope, "n": scores[scope]["n"],
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
    seed: int = 0
    # Seconds the training function spent in each part (train_s, eval_s, controller_s, ...), from its last report.
    timings: dict[str, float] = field(default_factory=dict)


def write_results_csv(summaries: list[MethodSummary], path: Path) -> pd.DataFrame:
    rows = [row for summary in summaries for row in results_rows(summary.method, summary.seed, summary.scores)]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    _write_atomic(path, frame.to_csv(index=False, float_format="%.4f"))
    return frame


def _format(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _format_spread(values: list[float]) -> str:
    """Format one seed's value as is, and several as mean ± sample std with NaN seeds left out."""
    finite = [value for value in values if value is not None and not math.isnan(value)]
    if len(values) == 1 or not finite:
        return _format(values[0] if len(values) == 1 else math.nan)
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    return f"{np.mean(finite):.3f} ± {_format(std)}"


def group_by_method(summaries: list[MethodSummary]) -> dict[str, list[MethodSummary]]:
    groups: dict[str, list[MethodSummary]] = {}
    for summary in summaries:
        groups.setdefault(summary.method, []).append(summary)
    return groups


def weight_change(history: list[dict[str, Any]], initial: list[float]) -> tuple[list[float], float]:
    """Return the last applied kd_weight and its L1 distance from the initial vector."""
    if not history:
        return list(initial), 0.0
    final = history[-1]["kd_weight"]
    return list(final), float(np.abs(np.asarray(final) - np.asarray(initial)).sum())


def render_report(summaries: list[MethodSummary], *, kd_weight_init: list[float], test_sizes: dict[str, int],
                  run_settings: dict[str, Any], title: str = "rlkd compare report") -> str:
    lines = [f"# {title}", ""]
    lines.append("Test set: " + ", ".join(f"{lang} {count}" for lang, count in test_sizes.items()) + " tweets "
                 "(dominant language of each tweet).")
    lines.append("")
    groups = group_by_method(summaries)
    seeds = max(len(group) for group in groups.values())
    title = "Macro-F1 per language (test)"
    lines.append(f"## {title}" if seeds == 1 else f"## {title}, mean ± std over {seeds} seeds")
    lines.append("")
    lines.append("| method | seeds | all | " + " | ".join(LANGS) + " | worst language | accuracy (all) |")
    lines.append("| --- | --- | --- | " + " | ".join("---" for _ in LANGS) + " | --- | --- |")
    for method, group in groups.items():
        def column(read):
            return _format_spread([read(summary.scores) for summary in group])

        cells = [str(len(group)), column(lambda scores: scores["all"]["macro_f1"])]
        cells += [column(lambda scores, lang=lang: scores[lang]["macro_f1"]) for lang in LANGS]
        cells += [column(worst_language_f1), column(lambda scores: scores["all"]["accuracy"])]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")

    lines.append("## Cost")
    lines.append("")
    lines.append("| method | seed | parameters | wall time (s) | notes |")
    lines.append("| --- | --- | --- | --- | --- |")
    for summary in summaries:
        lines.append(f"| {summary.method} | {summary.seed} | {summary.num_parameters:,} | {summary.wall_seconds:.0f} "
                     f"| {summary.notes} |")
    lines.append("")

    weighted = [summary for summary in summaries if summary.method in ("dro", "temperature", "rl")]
    if weighted:
        lines.append("## Final KD weights")
        lines.append("")
        lines.append("Initial kd_weight: " + ", ".join(f"{value:.3f}" for value in kd_weight_init)
                     + " (en, es, hi); temperature and dro set their own.")
        lines.append("")
        lines.append("| method | seed | " + " | ".join(LANGS) + " |")
        lines.append("| --- | --- | " + " | ".join("---" for _ in LANGS) + " |")
        for summary in weighted:
            final, _ = weight_change(summary.history, kd_weight_init)
            lines.append(f"| {summary.method} | {summary.seed} | " + " | ".join(f"{value:.3f}" for value in final) + " |")
        lines.append("")

    lines.append("## Settings")
    lines.append("")
    for name, value in run_settings.items():
        lines.append(f"- {name}: {value}")
    lines.append("")
    return "\n".join(lines)


def plot_kd_weights(summaries: list[MethodSummary], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    first_seed = [group[0] for group in group_by_method(summaries).values()]
    for summary in first_seed:
        if not summary.history or summary.method in ("teacher", "none", "kd"):
            continue
        # A record at step s carries the weights applied during the interval that ends at s,
        # so each value is drawn back to the previous record ("pre" steps), starting at step 0.
        steps = [0] + [record["step"] for record in summary.history]
        weights = np.asarray([summary.history[0]["kd_weight"]] + [record["kd_weight"] for record in summary.history])
        style = {"rl": "-", "dro": "--"}.get(summary.method, ":")
        for index, lang in enumerate(LANGS):
            axes.step(steps, weights[:, index], where="pre", linestyle=style, color=f"C{index}",
                      label=f"{summary.method} {lang}")
    axes.set_xlabel("training step")
    axes.set_ylabel("kd_weight applied")
    axes.set_title("Per-language KD weights during training" + (" (first seed)" if len(first_seed) < len(summaries) else ""))
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    _save_figure(figure, path)


def plot_f1_by_language(summaries: list[MethodSummary], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    groups = group_by_method(summaries)
    width = 0.8 / max(1, len(groups))
    positions = np.arange(len(SCOPES))
    for offset, (method, group) in enumerate(groups.items()):
        values = np.asarray([[summary.scores[scope]["macro_f1"] for scope in SCOPES] for summary in group])
        errors = values.std(axis=0, ddof=1) if len(group) > 1 else None
        axes.bar(positions + offset * width, values.mean(axis=0), width, yerr=errors, capsize=2, label=method)
    axes.set_xticks(positions + width * (len(groups) - 1) / 2, SCOPES)
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
