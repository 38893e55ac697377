"""Hugging Face ``datasets`` conversions: reading ``save_to_disk`` folders and building a DatasetDict."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import datasets
import pandas as pd

from rlkd.constants import LABELS, PROPORTION_COLUMNS
from rlkd.data.errors import DataError
from rlkd.data.features import FRAME_COLUMNS
from rlkd.data.tabular import LABEL_COLUMN, Row, collect_rows, count_row_tags
from rlkd.data.tweets import ReadOptions, TweetCollector, open_collector

HF = "hf"
# Files that `save_to_disk` writes: a Dataset folder has state.json and
# dataset_info.json, a DatasetDict folder has dataset_dict.json.
HF_MARKER_FILES = ("dataset_dict.json", "state.json", "dataset_info.json")

# `datasets.List` replaced `Sequence` for lists in datasets 4.0.
_ListFeature = getattr(datasets, "List", None) or datasets.Sequence


def is_hf_dataset_dir(path: str | Path) -> bool:
    """Return whether ``path`` is a folder written by ``save_to_disk``."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in HF_MARKER_FILES)


def read_hf_dir(path: Path, options: ReadOptions) -> list[TweetCollector]:
    """Read a saved Dataset, or each split of a saved DatasetDict, as one source.

    The columns are those of the table readers (``text``, ``label``, optional
    ``langs``, ``tokens``, ``id``, ``pair``). A ClassLabel ``label`` is read
    by name, so a dataset whose class order differs from LABELS keeps its
    meaning. A split's source is ``<path>/<split>`` and its ids start with
    ``<folder name>/<split>:``. A row's line is its 1-based row number.
    """
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise DataError.at(path, f"cannot load Hugging Face dataset: {error}") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded.items())
    else:
        splits = [(None, loaded)]

    options = dataclasses.replace(options, fallback_pair=options.fallback_pair or path.name)
    collectors = []
    for split, dataset in splits:
        source = str(path / split) if split else str(path)
        rows = dataset_rows(dataset)
        collector = open_collector(
            source,
            fmt=HF,
            id_prefix=f"{path.name}/{split}" if split else path.name,
            seen_tags=count_row_tags(rows),
            options=options,
            name_path=path,
        )
        collect_rows(rows, collector)
        collectors.append(collector)
    return collectors


def dataset_rows(dataset: datasets.Dataset) -> list[Row]:
    """Return a dataset's rows with ClassLabel ids replaced by their names."""
    label_feature = dataset.features.get(LABEL_COLUMN)
    class_names = label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None
    rows = []
    for number, values in enumerate(dataset.to_list(), start=1):
        label = values.get(LABEL_COLUMN)
        if class_names is not None and isinstance(label, int) and 0 <= label < len(class_names):
            values[LABEL_COLUMN] = class_names[label]
        record = json.dumps(values, ensure_ascii=False, default=str)
        rows.append(Row(number, number, record, values))
    return rows


def frame_features() -> datasets.Features:
    """Return the datasets Features of a prepared table; ``label`` is a ClassLabel over LABELS."""
    string = datasets.Value("string")
    return datasets.Features(
        {
            "id": string,
            "text": string,
            "label": datasets.ClassLabel(names=list(LABELS)),
            "pair": string,
            "tokens": _ListFeature(string),
            "langs": _ListFeature(string),
            **{column: datasets.Value("float64") for column in PROPORTION_COLUMNS},
            "dominant_lang": string,
            "cmi": datasets.Value("float64"),
            "source_file": string,
            "line": datasets.Value("int64"),
        }
    )


def to_hf_datasets(splits: Mapping[str, pd.DataFrame]) -> datasets.DatasetDict:
    """Convert prepared tables (such as the output of prepare_splits) to a DatasetDict.

    Each table must have the columns of a prepared table; the split names are
    kept. ``label`` becomes a ClassLabel with the names in LABELS.
    """
    features = frame_features()
    converted = {}
    for name, frame in splits.items():
        missing = [column for column in FRAME_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(f"split {name!r} lacks columns {', '.join(missing)}")
        # tolist() gives Python scalars and lists, which Arrow converts directly.
        columns = {column: frame[column].tolist() for column in FRAME_COLUMNS}
        converted[name] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(converted)

