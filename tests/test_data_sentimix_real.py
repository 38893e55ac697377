"""The released SentiMix files, read in place: tweet and label counts, quirks, and prepare_splits."""

from collections import Counter
from pathlib import Path

import pytest

from rlkd.constants import LABELS
from rlkd.data import prepare_splits, read_corpus, read_corpus_file

# The corpus folder comes from the `sentimix_dir` fixture in conftest.py.

# Tweets and (positive, neutral, negative) counts as published with the corpus.
EXPECTED = {
    "train_conll_spanglish.txt": ("spanglish", 13500, (6770, 4472, 2258)),
    "train_conll_hinglish.txt": ("hinglish", 13618, (4552, 5062, 4004)),
    "spanglish_trial.txt": ("spanglish", 2000, (763, 702, 535)),
    "hinglish_trial.txt": ("hinglish", 1869, (582, 754, 533)),
}


@pytest.fixture(scope="module")
def corpus(sentimix_dir):
    return read_corpus(sentimix_dir)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tweet_and_label_counts(corpus, sentimix_dir, name):
    pair, tweets, (positive, neutral, negative) = EXPECTED[name]
    source = str(sentimix_dir / name)
    frame = corpus.frame[corpus.frame["source_file"] == source]
    labels = Counter(LABELS[label] for label in frame["label"])
    counts = corpus.counts[source]

    assert len(frame) == tweets
    assert (counts.tweets, counts.kept, counts.rejected) == (tweets, tweets, 0)
    assert labels == {"positive": positive, "neutral": neutral, "negative": negative}
    assert set(frame["pair"]) == {pair}


def test_meta_tokens_in_spanglish(corpus, sentimix_dir):
    frame = corpus.frame[corpus.frame["source_file"] == str(sentimix_dir / "train_conll_spanglish.txt")]
    meta_langs = [
        lang
        for tokens, langs in zip(frame["tokens"], frame["langs"])
        for token, lang in zip(tokens, langs)
        if token == "meta"
    ]
    assert meta_langs == ["es", "es", "es", "es"]


def test_repairs_only(corpus):
    # Hinglish files contain whitespace-only tokens (U+00A0) and one token with no tag.
    assert corpus.reject_counts() == {"empty_token": 32, "missing_tag": 1}
    assert all("hinglish" in Path(reject.file).name for reject in corpus.rejects)


def test_clean_values(corpus):
    frame = corpus.frame
    assert frame["id"].is_unique
    assert not frame["text"].str.contains("\r").any()
    assert all(token and token.strip() == token for tokens in frame["tokens"] for token in tokens)
    assert all(len(tokens) == len(langs) for tokens, langs in zip(frame["tokens"], frame["langs"]))
    assert {lang for langs in frame["langs"] for lang in langs} == {"en", "es", "hi", "other"}
    sums = frame["p_en"] + frame["p_es"] + frame["p_hi"]
    assert ((sums - 1.0).abs() < 1e-9).all()
    assert frame["cmi"].between(0.0, 50.0).all()


def test_strict_single_file(sentimix_dir):
    result = read_corpus_file(sentimix_dir / "train_conll_spanglish.txt")
    assert len(result.frame) == 13500
    assert result.rejects == []


def test_prepare_splits_real(sentimix_dir, tmp_path):
    splits = prepare_splits(sentimix_dir, tmp_path / "cache")

    assert len(splits["test"]) == 2000 + 1869
    assert len(splits["train"]) + len(splits["dev"]) == 13500 + 13618
    assert len(splits["dev"]) == round(0.1 * (13500 + 13618))
    assert not set(splits["train"]["id"]) & set(splits["dev"]["id"])
    assert (tmp_path / "cache" / "rejects.jsonl").is_file()
