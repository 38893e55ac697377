"""Data stage: read code-switched sentiment corpora into tweet tables, then split, cache and inspect them.

Every table has the columns in ``rlkd.data.features.FRAME_COLUMNS``, one row
per tweet.
"""

from rlkd.data.errors import DataError
from rlkd.data.hf import to_hf_datasets
from rlkd.data.inspect import InspectReport, inspect_corpus
from rlkd.data.reader import read_corpus, read_corpus_file
from rlkd.data.results import FileCounts, ReadResult, Reject
from rlkd.data.splits import prepare_splits
from rlkd.data.tagmaps import SENTIMIX_TAG_MAPS

__all__ = [
    "SENTIMIX_TAG_MAPS",
    "DataError",
    "FileCounts",
    "InspectReport",
    "ReadResult",
    "Reject",
    "inspect_corpus",
    "prepare_splits",
    "read_corpus",
    "read_corpus_file",
    "to_hf_datasets",
]
