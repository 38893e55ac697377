"""CSV, TSV, JSONL and Hugging Face dataset folder readers."""

from pathlib import Path

import datasets
import pytest

from rlkd.data import DataError, read_corpus, read_corpus_file, to_hf_datasets


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


CSV_DATA = (
    b"text,label,langs,id,pair\n"
    b'"Hola, my friend",positive,es en en,t1,spanglish\n'
    b"@ user que tal,neutral,other other es es,,\n"
    b"yaar so cool,2,hi en en,t3,hinglish\n"
)


def test_csv_values(tmp_path):
    path = write(tmp_path, "tweets.csv", CSV_DATA)
    result = read_corpus_file(path)
    frame = result.frame

    assert result.counts[str(path)].format == "csv"
    assert list(frame["id"]) == ["tweets:t1", "tweets:2", "tweets:t3"]
    assert list(frame["label"]) == [2, 1, 2]
    assert list(frame["line"]) == [2, 3, 4]
    assert list(frame["text"]) == ["Hola, my friend", "@user que tal", "yaar so cool"]
    assert frame.iloc[0]["tokens"] == ["Hola,", "my", "friend"]
    assert frame.iloc[1]["langs"] == ["other", "other", "es", "es"]
    # A row without a pair gets the file's pair: the ISO tag map names none, so the file stem.
    assert list(frame["pair"]) == ["spanglish", "tweets", "hinglish"]
    assert frame.iloc[2]["p_hi"] == pytest.approx(1 / 3)
    assert frame.iloc[2]["p_en"] == pytest.approx(2 / 3)
    assert frame.iloc[2]["dominant_lang"] == "en"


def test_csv_multiline_field_line_numbers(tmp_path):
    data = b'text,label\n"two\nlines",negative\nnext,neutral\n'
    frame = read_corpus_file(write(tmp_path, "t.csv", data), pair="spanglish").frame

    assert list(frame["line"]) == [2, 4]
    assert frame.iloc[0]["text"] == "two lines"


def test_csv_untagged_known_pair(tmp_path):
    path = write(tmp_path, "t.csv", b"text,label\nhello world,0\n")
    row = read_corpus_file(path, pair="spanglish").frame.iloc[0]

    assert row["langs"] == ["other", "other"]
    assert row["p_en"] == 0.5
    assert row["p_es"] == 0.5
    assert row["p_hi"] == 0.0
    assert row["dominant_lang"] == "es"
    assert row["cmi"] == 0.0


def test_csv_untagged_unknown_pair(tmp_path):
    path = write(tmp_path, "t.csv", b"text,label\nhello world,negative\n")
    row = read_corpus_file(path).frame.iloc[0]

    assert row["pair"] == "t"
    assert row["p_en"] == pytest.approx(1 / 3)
    assert row["p_es"] == pytest.approx(1 / 3)
    assert row["p_hi"] == pytest.approx(1 / 3)
    assert row["dominant_lang"] == "es"


def test_csv_pair_from_folder_name(tmp_path):
    write(tmp_path / "en-hi", "t.csv", b"text,label\nhello world,negative\n")
    row = read_corpus(tmp_path / "en-hi").frame.iloc[0]

    assert row["pair"] == "en-hi"
    assert row["p_en"] == 0.5
    assert row["p_hi"] == 0.5
    assert row["dominant_lang"] == "hi"


def test_csv_sentimix_tags(tmp_path):
    path = write(tmp_path, "t.csv", b"text,label,langs\nyaar cool !,positive,Hin Eng O\n")
    row = read_corpus_file(path).frame.iloc[0]

    assert row["pair"] == "hinglish"
    assert row["langs"] == ["hi", "en", "other"]


def test_csv_missing_column(tmp_path):
    path = write(tmp_path, "t.csv", b"text,sentiment\nhello,positive\n")
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    assert str(raised.value).startswith(f"{path}:1: missing column label")


def test_csv_bad_rows_lenient(tmp_path):
    data = (
        b"text,label,langs\n"
        b"hola amigo,positive,es es\n"
        b"hola,positive,es es\n"
        b"hola,great,es\n"
        b",neutral,\n"
        b"hola,positive\n"
        b"hola bro,negative,es xx\n"
    )
    path = write(tmp_path, "t.csv", data)
    result = read_corpus_file(path, mode="lenient")

    assert list(result.frame["line"]) == [2, 7]
    assert result.frame.iloc[1]["langs"] == ["es", "other"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [
        (3, "misaligned_langs"),
        (4, "invalid_label"),
        (5, "empty_tweet"),
        (6, "malformed_line"),
        (7, "unknown_tag"),
    ]
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (6, 2, 4)


def test_csv_misaligned_langs_strict(tmp_path):
    path = write(tmp_path, "t.csv", b"text,label,langs\nhola amigo,positive,es\n")
    with pytest.raises(DataError, match=r"t\.csv:2: 1 language tags for 2 tokens"):
        read_corpus_file(path)


def test_tsv_has_no_quoting(tmp_path):
    data = b'text\tlabel\n"quoted tweet\tpositive\nnext\tneutral\n'
    frame = read_corpus_file(write(tmp_path, "t.tsv", data), pair="spanglish").frame

    assert list(frame["text"]) == ['"quoted tweet', "next"]
    assert list(frame["line"]) == [2, 3]


def test_tsv_crlf_and_bom(tmp_path):
    data = b"\xef\xbb\xbftext\tlabel\r\nhola\tpositive\r\n"
    frame = read_corpus_file(write(tmp_path, "t.tsv", data), pair="spanglish").frame

    assert list(frame["text"]) == ["hola"]
    assert list(frame["label"]) == [2]


JSONL_DATA = (
    b'{"text": "hola my friend", "label": 2, "langs": "es en en", "id": 10}\n'
    b"\n"
    b'{"tokens": ["@", "user", "que"], "langs": ["other", "other", "es"], "label": "Negative"}\n'
    b"{not json}\n"
    b"[1, 2]\n"
)


def test_jsonl_lenient(tmp_path):
    path = write(tmp_path, "t.jsonl", JSONL_DATA)
    result = read_corpus_file(path, mode="lenient", pair="spanglish")
    frame = result.frame

    assert list(frame["id"]) == ["t:10", "t:2"]
    assert list(frame["line"]) == [1, 3]
    assert list(frame["label"]) == [2, 0]
    assert frame.iloc[1]["text"] == "@user que"
    assert frame.iloc[1]["langs"] == ["other", "other", "es"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [
        (4, "malformed_line"),
        (5, "malformed_line"),
    ]


def test_jsonl_invalid_json_strict(tmp_path):
    path = write(tmp_path, "t.jsonl", JSONL_DATA)
    with pytest.raises(DataError, match=r"t\.jsonl:4: invalid JSON"):
        read_corpus_file(path, pair="spanglish")


def test_hf_dataset_folder(tmp_path):
    # The class order differs from LABELS, so ids must be read by name.
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["positive", "negative", "neutral"]),
            "langs": datasets.Value("string"),
        }
    )
    dataset = datasets.Dataset.from_dict(
        {"text": ["hola friend", "yo tambien"], "label": [0, 1], "langs": ["es en", "es es"]},
        features=features,
    )
    dataset.save_to_disk(str(tmp_path / "user_data"))
    result = read_corpus(tmp_path / "user_data")
    frame = result.frame

    assert result.counts[str(tmp_path / "user_data")].format == "hf"
    assert list(frame["id"]) == ["user_data:1", "user_data:2"]
    assert list(frame["label"]) == [2, 0]
    assert list(frame["pair"]) == ["user_data", "user_data"]
    assert list(frame["line"]) == [1, 2]


def test_hf_dataset_dict_in_folder(tmp_path):
    splits = {
        "train": datasets.Dataset.from_dict({"text": ["hola amigo"], "label": ["positive"]}),
        "test": datasets.Dataset.from_dict({"text": ["adios"], "label": ["negative"]}),
    }
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "corpus" / "spanglish_hf"))
    result = read_corpus(tmp_path / "corpus")

    assert sorted(result.frame["id"]) == ["spanglish_hf/test:1", "spanglish_hf/train:1"]
    assert set(result.frame["pair"]) == {"spanglish"}
    assert sorted(result.counts) == [
        str(tmp_path / "corpus" / "spanglish_hf" / "test"),
        str(tmp_path / "corpus" / "spanglish_hf" / "train"),
    ]


def test_hf_round_trip(tmp_path):
    corpus = write(tmp_path, "spanglish.txt", b"meta\t1\tpositive\nHola\tlang2\nmy\tlang1\n!\tother\n")
    original = read_corpus_file(corpus).frame
    to_hf_datasets({"train": original}).save_to_disk(str(tmp_path / "saved"))
    frame = read_corpus(tmp_path / "saved").frame

    assert frame.iloc[0]["tokens"] == original.iloc[0]["tokens"]
    assert frame.iloc[0]["langs"] == original.iloc[0]["langs"]
    assert frame.iloc[0]["label"] == original.iloc[0]["label"]
    assert frame.iloc[0]["pair"] == "spanglish"
    assert frame.iloc[0]["id"] == "saved/train:spanglish:1"
