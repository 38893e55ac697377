"""Corpus report: tweets, label distribution, mean CMI and rejects per file, pair and dominant language."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlkd.constants import LABELS
from rlkd.data.reader import read_corpus
from rlkd.data.results import ReadResult

REPORT_FILE = "data_report.md"
HISTOGRAM_FILE = "cmi_histogram.png"
CMI_BINS = np.linspace(0.0, 100.0, 21)


@dataclass
class InspectReport:
    """Summary tables of one read corpus.

    Each table has the columns ``tweets`` (kept), one count per label in
    LABELS and ``mean_cmi``. ``by_file`` and ``by_pair`` add ``rejected``
    (tweets dropped) and one column per reject reason, repairs included. A
    file's rejects count towards the file's pair. ``by_dominant_lang`` has
    no reject columns because a dropped tweet has no dominant language.
    """

    path: str
    mode: str
    by_file: pd.DataFrame
    by_pair: pd.DataFrame
    by_dominant_lang: pd.DataFrame
    cmi_by_pair: dict[str, np.ndarray]
    reject_reasons: dict[str, int]

    def to_markdown(self) -> str:
        """Render the report as Markdown with one table per grouping."""
        kept_tweets = int(self.by_file["tweets"].sum())
        rejected_tweets = int(self.by_file["rejected"].sum())
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.reject_reasons.items()))
        lines = [
            f"# Data report: {self.path}",
            "",
            f"Read in {self.mode} mode: {len(self.by_file)} files, {kept_tweets} tweets kept, {rejected_tweets} rejected.",
            f"Rejects and repairs by reason: {reasons or 'none'}.",
            "Label columns give the count and the share of the row's kept tweets.",
            "CMI is the code-mixing index of Das and Gambäck (2014), 0..100.",
            "",
            "## By file",
            "",
            markdown_table(self.by_file, "file"),
            "",
            "## By pair",
            "",
            markdown_table(self.by_pair, "pair"),
            "",
            "## By dominant language",
            "",
            "Rejected tweets have no dominant language, so this table counts kept tweets only.",
            "",
            markdown_table(self.by_dominant_lang, "dominant_lang"),
            "",
        ]
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write data_report.md and cmi_histogram.png into ``out_dir`` and return their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        histogram_path = out_dir / HISTOGRAM_FILE
        save_cmi_histogram(self.cmi_by_pair, histogram_path)
        report_path = out_dir / REPORT_FILE
        markdown = self.to_markdown() + f"\n![CMI histogram per pair]({HISTOGRAM_FILE})\n"
        report_path.write_text(markdown, encoding="utf-8")
        return report_path, histogram_path


def summarize(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Return tweets, label counts and mean CMI of ``frame`` grouped by ``column``."""
    groups = frame.groupby(column, sort=True)
    table = pd.DataFrame({"tweets": groups.size()})
    label_counts = groups["label"].value_counts().unstack(fill_value=0)
    for label_id, name in enumerate(LABELS):
        table[name] = label_counts[label_id] if label_id in label_counts else 0
    table["mean_cmi"] = groups["cmi"].mean()
    table.index = table.index.astype(str)
    return table.astype({"tweets": "int64", **{name: "int64" for name in LABELS}})


def reject_table(result: ReadResult, key: str) -> pd.DataFrame:
    """Return rejected tweets and Reject entries by reason per file (``key`` "file") or per file pair ("pair")."""
    rows: dict[str, Counter[str]] = {}
    for source, counts in result.counts.items():
        name = source if key == "file" else str(counts.pair)
        row = rows.setdefault(name, Counter())
        row["rejected"] += counts.rejected
        row.update(counts.reasons)
    table = pd.DataFrame.from_dict(rows, orient="index").fillna(0).astype("int64")
    if "rejected" not in table:
        table["rejected"] = pd.Series(dtype="int64")
    reasons = sorted(column for column in table.columns if column != "rejected")
    return table[["rejected", *reasons]]


def build_report(result: ReadResult, path: str, mode: str) -> InspectReport:
    """Build the report tables from a read result."""
    frame = result.frame
    by_file = summarize(frame, "source_file")
    by_pair = summarize(frame, "pair")
    tables = []
    for summary, key in ((by_file, "file"), (by_pair, "pair")):
        rejects = reject_table(result, key)
        combined = summary.join(rejects, how="outer")
        count_columns = [column for column in combined.columns if column != "mean_cmi"]
        combined[count_columns] = combined[count_columns].fillna(0).astype("int64")
        tables.append(combined)
    cmi_by_pair = {str(pair): part["cmi"].to_numpy() for pair, part in frame.groupby("pair", sort=True)}
    return InspectReport(
        path=path,
        mode=mode,
        by_file=tables[0],
        by_pair=tables[1],
        by_dominant_lang=summarize(frame, "dominant_lang"),
        cmi_by_pair=cmi_by_pair,
        reject_reasons=dict(result.reject_counts()),
    )


def inspect_corpus(path: str | Path, out_dir: str | Path | None = None, *, mode: str = "lenient") -> InspectReport:
    """Read a corpus file or folder and summarize it; with ``out_dir``, also write data_report.md and cmi_histogram.png.

    Lenient mode by default, so that the report lists malformed records
    instead of stopping at the first one.
    """
    result = read_corpus(path, mode=mode)
    report = build_report(result, str(path), mode)
    if out_dir is not None:
        report.save(out_dir)
    return report


def markdown_table(table: pd.DataFrame, index_name: str) -> str:
    """Render a summary table as a Markdown pipe table, with label shares next to label counts."""
    header = [index_name, *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = [str(name)]
        for column in table.columns:
            cells.append(_format_cell(row, column))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_cell(row: pd.Series, column: str) -> str:
    value = row[column]
    if column == "mean_cmi":
        return "" if pd.isna(value) else f"{value:.1f}"
    if column in LABELS and row["tweets"] > 0:
        return f"{int(value)} ({100 * value / row['tweets']:.1f}%)"
    return str(int(value))


def save_cmi_histogram(cmi_by_pair: dict[str, np.ndarray], path: Path) -> None:
    """Plot the CMI histogram of each pair (5-point bins over 0..100) and save it as PNG.

    Uses the Agg canvas directly, so the global matplotlib backend is not changed.
    """
    figure = Figure(figsize=(7, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if cmi_by_pair:
        names = list(cmi_by_pair)
        axes.hist([cmi_by_pair[name] for name in names], bins=CMI_BINS, label=names)
        axes.legend(title="pair")
    else:
        axes.text(0.5, 0.5, "no tweets", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("code-mixing index (0..100)")
    axes.set_ylabel("tweets")
    axes.set_title("Code-mixing index per tweet")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
