"""SentiMix and LinCE-style CoNLL readers on inputs built byte for byte."""

from pathlib import Path

import pytest

from rlkd.data import DataError, read_corpus, read_corpus_file

# Two Spanglish tweets. The second one has a mention split over two tokens
# and the Spanish word "meta" as a token inside the tweet.
SPANGLISH = (
    b"meta\t1\tpositive\n"
    b"Hola\tlang2\n"
    b"my\tlang1\n"
    b"friend\tlang1\n"
    b"!\tother\n"
    b"\n"
    b"meta\t2\tnegative\n"
    b"@\tother\n"
    b"user\tother\n"
    b"la\tlang2\n"
    b"meta\tlang2\n"
    b"es\tlang2\n"
    b"bad\tlang1\n"
)

HINGLISH = (
    b"meta\t7\tneutral\n"
    b"yaar\tHin\n"
    b"this\tEng\n"
    b"is\tEng\n"
    b"mast\tHin\n"
    b":)\tEMT\n"
    b"\n"
    b"meta\t8\tpositive\n"
    b"...\tO\n"
    b"\n"
)


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def without_path_columns(frame):
    return frame.drop(columns=["source_file"])


def test_sentimix_values(tmp_path):
    path = write(tmp_path, "corpus.txt", SPANGLISH)
    result = read_corpus_file(path)
    frame = result.frame

    assert list(frame["id"]) == ["corpus:1", "corpus:2"]
    assert list(frame["label"]) == [2, 0]
    assert list(frame["pair"]) == ["spanglish", "spanglish"]
    assert list(frame["line"]) == [1, 7]
    assert list(frame["source_file"]) == [str(path), str(path)]

    first, second = frame.iloc[0], frame.iloc[1]
    assert first["text"] == "Hola my friend !"
    assert first["tokens"] == ["Hola", "my", "friend", "!"]
    assert first["langs"] == ["es", "en", "en", "other"]
    assert first["p_en"] == pytest.approx(2 / 3)
    assert first["p_es"] == pytest.approx(1 / 3)
    assert first["p_hi"] == 0.0
    assert first["dominant_lang"] == "en"
    assert first["cmi"] == pytest.approx(100 / 3)

    assert second["text"] == "@user la meta es bad"
    assert second["tokens"] == ["@", "user", "la", "meta", "es", "bad"]
    assert second["langs"] == ["other", "other", "es", "es", "es", "en"]
    assert second["p_es"] == pytest.approx(0.75)
    assert second["p_en"] == pytest.approx(0.25)
    assert second["dominant_lang"] == "es"
    assert second["cmi"] == pytest.approx(25.0)


def test_sentimix_counts_and_no_rejects(tmp_path):
    result = read_corpus_file(write(tmp_path, "corpus.txt", SPANGLISH))
    counts = result.counts[str(tmp_path / "corpus.txt")]

    assert counts.format == "sentimix"
    assert counts.tweets == 2
    assert counts.kept == 2
    assert counts.rejected == 0
    assert counts.reasons == {}
    assert result.rejects == []


def test_hinglish_tags_detected(tmp_path):
    result = read_corpus_file(write(tmp_path, "corpus.txt", HINGLISH))
    frame = result.frame

    assert list(frame["pair"]) == ["hinglish", "hinglish"]
    assert frame.iloc[0]["langs"] == ["hi", "en", "en", "hi", "other"]
    assert frame.iloc[0]["dominant_lang"] == "hi"  # 2 en and 2 hi tie
    assert frame.iloc[0]["cmi"] == pytest.approx(50.0)
    # No language token: proportions split over the pair's languages.
    assert frame.iloc[1]["p_en"] == 0.5
    assert frame.iloc[1]["p_hi"] == 0.5
    assert frame.iloc[1]["p_es"] == 0.0
    assert frame.iloc[1]["dominant_lang"] == "hi"
    assert frame.iloc[1]["cmi"] == 0.0


@pytest.mark.parametrize("separator", [b"\t\n", b"   \n", b" \t \n"])
def test_whitespace_separator_line(tmp_path, separator):
    baseline = read_corpus_file(write(tmp_path / "lf", "corpus.txt", SPANGLISH)).frame
    data = SPANGLISH.replace(b"!\tother\n\n", b"!\tother\n" + separator)
    assert data != SPANGLISH
    frame = read_corpus_file(write(tmp_path / "ws", "corpus.txt", data)).frame

    assert len(frame) == 2
    assert without_path_columns(frame).equals(without_path_columns(baseline))
    all_tokens = [token for tokens in frame["tokens"] for token in tokens]
    all_langs = [lang for langs in frame["langs"] for lang in langs]
    assert "" not in all_tokens
    assert "" not in all_langs


def test_crlf_same_as_lf(tmp_path):
    baseline = read_corpus_file(write(tmp_path / "lf", "corpus.txt", SPANGLISH)).frame
    frame = read_corpus_file(write(tmp_path / "crlf", "corpus.txt", SPANGLISH.replace(b"\n", b"\r\n"))).frame

    assert without_path_columns(frame).equals(without_path_columns(baseline))
    for column in ("id", "text", "pair", "dominant_lang"):
        assert not frame[column].str.contains("\r").any(), column
    assert all("\r" not in value for values in frame["tokens"] for value in values)
    assert all("\r" not in value for values in frame["langs"] for value in values)


def test_crlf_invalid_label_has_no_cr(tmp_path):
    data = b"meta\t1\tpostive\r\nhola\tlang2\r\n"
    path = write(tmp_path, "corpus.txt", data)
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    assert "'postive'" in str(raised.value)
    assert "\r" not in str(raised.value)


def test_bom_before_first_header(tmp_path):
    baseline = read_corpus_file(write(tmp_path / "plain", "corpus.txt", SPANGLISH)).frame
    frame = read_corpus_file(write(tmp_path / "bom", "corpus.txt", b"\xef\xbb\xbf" + SPANGLISH)).frame

    assert list(frame["id"]) == list(baseline["id"])
    assert len(frame) == 2
    assert frame.iloc[0]["tokens"][0] == "Hola"
    assert without_path_columns(frame).equals(without_path_columns(baseline))


def test_meta_token_inside_tweet(tmp_path):
    frame = read_corpus_file(write(tmp_path, "corpus.txt", SPANGLISH)).frame

    assert len(frame) == 2
    assert "meta" in frame.iloc[1]["tokens"]
    assert frame.iloc[1]["langs"][frame.iloc[1]["tokens"].index("meta")] == "es"


def test_meta_token_first_in_tweet_body(tmp_path):
    data = b"meta\t1\tpositive\nmeta\tlang2\nde\tlang2\nhoy\tlang2\n"
    frame = read_corpus_file(write(tmp_path, "corpus.txt", data)).frame

    assert len(frame) == 1
    assert frame.iloc[0]["tokens"] == ["meta", "de", "hoy"]


def test_header_without_blank_line_strict(tmp_path):
    data = b"meta\t1\tpositive\nhola\tlang2\nmeta\t2\tneutral\nadios\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    error = raised.value
    assert str(error).startswith(f"{path}:3: ")
    assert "has 3 fields" in str(error)
    assert "a header must follow a blank line" in str(error)
    assert error.line == 3
    assert error.reason == "malformed_line"


def test_invalid_label_strict(tmp_path):
    data = SPANGLISH + b"\nmeta\t3\tpostive\nhola\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    message = str(raised.value)
    assert message == (
        f"{path}:15: invalid label 'postive'; expected one of negative, neutral, positive or an id 0..2"
    )
    assert "\n" not in message
    assert raised.value.reason == "invalid_label"


def test_invalid_label_lenient(tmp_path):
    data = SPANGLISH + b"\nmeta\t3\tpostive\nhola\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path, mode="lenient")

    assert list(result.frame["id"]) == ["corpus:1", "corpus:2"]
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert reject.reason == "invalid_label"
    assert reject.line == 15
    assert reject.file == str(path)
    assert reject.record == "meta\t3\tpostive\nhola\tlang2"
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (3, 2, 1)
    assert counts.reasons == {"invalid_label": 1}


@pytest.mark.parametrize("header", [b"meta\t3\t\n", b"meta\t3\t  \n", b"meta\t3\n"])
def test_missing_label_strict(tmp_path, header):
    path = write(tmp_path, "corpus.txt", SPANGLISH + b"\n" + header + b"hola\tlang2\n")
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    assert str(raised.value).startswith(f"{path}:15: ")
    assert raised.value.reason == "missing_label"


@pytest.mark.parametrize("header", [b"meta\t3\t\n", b"meta\t3\n"])
def test_missing_label_lenient(tmp_path, header):
    path = write(tmp_path, "corpus.txt", SPANGLISH + b"\n" + header + b"hola\tlang2\n")
    result = read_corpus_file(path, mode="lenient")

    assert len(result.frame) == 2
    assert [reject.reason for reject in result.rejects] == ["missing_label"]
    assert result.rejects[0].line == 15
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (3, 2, 1)


def test_unknown_tag_strict(tmp_path):
    data = b"meta\t1\tpositive\nhola\tlang2\nbro\tlang3\n"
    path = write(tmp_path, "corpus.txt", data)
    with pytest.raises(DataError) as raised:
        read_corpus_file(path)
    message = str(raised.value)
    assert message.startswith(
        f"{path}:3: unknown language tag 'lang3' for tag map 'spanglish', chosen by the tags in the file; "
    )
    assert raised.value.reason == "unknown_tag"


def test_unknown_tag_lenient_keeps_tweet(tmp_path):
    data = b"meta\t1\tpositive\nhola\tlang2\nbro\tlang3\n"
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path, mode="lenient")

    assert len(result.frame) == 1
    assert result.frame.iloc[0]["tokens"] == ["hola", "bro"]
    assert result.frame.iloc[0]["langs"] == ["es", "other"]
    assert result.frame.iloc[0]["p_es"] == 1.0
    assert len(result.rejects) == 1
    assert result.rejects[0].reason == "unknown_tag"
    assert result.rejects[0].line == 3
    assert result.rejects[0].record == "bro\tlang3"
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (1, 1, 0)
    assert counts.reasons == {"unknown_tag": 1}


def test_blank_token_and_tag_repaired_strict(tmp_path):
    # As in the released Hinglish files: a token that is only U+00A0, an
    # empty token, and a token without a tag.
    data = "meta\t1\tneutral\nkya\tHin\n\u00a0\tO\n\tO\n\u2026\t\nbaat\tHin\n".encode()
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path)

    assert result.frame.iloc[0]["tokens"] == ["kya", "\u2026", "baat"]
    assert result.frame.iloc[0]["langs"] == ["hi", "other", "hi"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [
        (3, "empty_token"),
        (4, "empty_token"),
        (5, "missing_tag"),
    ]
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (1, 1, 0)


def test_empty_tweet_lenient(tmp_path):
    path = write(tmp_path, "corpus.txt", b"meta\t1\tpositive\n\nmeta\t2\tneutral\nhola\tlang2\n")
    result = read_corpus_file(path, mode="lenient")

    assert list(result.frame["id"]) == ["corpus:2"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [(1, "empty_tweet")]


def test_duplicate_id_lenient(tmp_path):
    data = b"meta\t1\tpositive\nhola\tlang2\n\nmeta\t1\tneutral\nadios\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path, mode="lenient")

    assert list(result.frame["text"]) == ["hola"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [(4, "duplicate_id")]


def test_token_line_outside_tweet(tmp_path):
    data = SPANGLISH + b"\nhola\tlang2\nadios\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    with pytest.raises(DataError, match=r":15: token line 'hola\\tlang2' outside a tweet"):
        read_corpus_file(path)

    result = read_corpus_file(path, mode="lenient")
    assert len(result.frame) == 2
    assert [(reject.line, reject.reason) for reject in result.rejects] == [(15, "malformed_line")]
    counts = result.counts[str(path)]
    assert (counts.tweets, counts.kept, counts.rejected) == (2, 2, 0)


def test_token_line_without_tab_lenient(tmp_path):
    data = b"meta\t1\tpositive\nhola\nadios\tlang2\n\nmeta\t2\tneutral\nbien\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path, mode="lenient")

    assert list(result.frame["id"]) == ["corpus:2"]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [(2, "malformed_line")]


def test_tag_map_from_file_name(tmp_path):
    # LinCE-style Hinglish uses lang1/lang2; the file name picks the Hinglish map.
    data = b"meta\t1\tpositive\nyaar\tlang2\ncool\tlang1\n"
    path = write(tmp_path, "my_hinglish.txt", data)
    with pytest.raises(DataError, match="unknown language tag 'lang2' for tag map 'hinglish', chosen by the file name"):
        read_corpus_file(path)

    result = read_corpus(path, tag_maps={"hinglish": {"lang1": "en", "lang2": "hi"}})
    assert result.frame.iloc[0]["langs"] == ["hi", "en"]
    assert result.frame.iloc[0]["pair"] == "hinglish"


def test_explicit_tag_map_and_pair(tmp_path):
    data = b"meta\t1\tpositive\nyaar\tL2\ncool\tL1\n!\tP\n"
    path = write(tmp_path, "corpus.txt", data)
    result = read_corpus_file(path, tag_map={"L1": "en", "L2": "hi", "P": "other"}, pair="en-hi")

    row = result.frame.iloc[0]
    assert row["langs"] == ["hi", "en", "other"]
    assert row["pair"] == "en-hi"
    assert row["dominant_lang"] == "hi"


def test_unknown_tag_set(tmp_path):
    path = write(tmp_path, "corpus.txt", b"meta\t1\tpositive\nhola\tXX\n")
    with pytest.raises(DataError, match="no known tag set contains any of its language tags"):
        read_corpus_file(path, mode="lenient")


def test_non_utf8_file(tmp_path):
    data = b"meta\t1\tpositive\nhola\tlang2\nni\xf1o\tlang2\n"
    path = write(tmp_path, "corpus.txt", data)
    for mode in ("strict", "lenient"):
        with pytest.raises(DataError) as raised:
            read_corpus_file(path, mode=mode)
        message = str(raised.value)
        assert message.startswith(f"{path}:3: invalid UTF-8 byte 0xf1 at column 3")
        assert raised.value.line == 3


def test_missing_file(tmp_path):
    path = tmp_path / "absent.txt"
    with pytest.raises(DataError, match="absent.txt: file not found"):
        read_corpus_file(path)
    with pytest.raises(DataError, match="absent.txt: file or folder not found"):
        read_corpus(path)


def test_missing_folder(tmp_path):
    path = tmp_path / "no_such_folder"
    with pytest.raises(DataError) as raised:
        read_corpus(path)
    assert str(path) in str(raised.value)


def test_folder_without_corpus_files(tmp_path):
    write(tmp_path, "README.md", b"# notes\n")
    with pytest.raises(DataError, match="contains no corpus files"):
        read_corpus(tmp_path)


def test_invalid_mode_and_format(tmp_path):
    path = write(tmp_path, "corpus.txt", SPANGLISH)
    with pytest.raises(ValueError, match="invalid mode 'loose'"):
        read_corpus_file(path, mode="loose")
    with pytest.raises(ValueError, match="invalid format 'xml'"):
        read_corpus_file(path, fmt="xml")


def test_folder_reads_all_files(tmp_path):
    write(tmp_path, "spanglish_a.txt", SPANGLISH)
    write(tmp_path, "hinglish_b.txt", HINGLISH)
    write(tmp_path, "README.md", b"not a corpus\n")
    result = read_corpus(tmp_path)

    assert list(result.frame["id"]) == ["hinglish_b:7", "hinglish_b:8", "spanglish_a:1", "spanglish_a:2"]
    assert sorted(result.counts) == [str(tmp_path / "hinglish_b.txt"), str(tmp_path / "spanglish_a.txt")]


def test_same_stem_in_folder_rejected(tmp_path):
    write(tmp_path, "corpus.txt", SPANGLISH)
    write(tmp_path, "corpus.conll", SPANGLISH)
    with pytest.raises(DataError, match="tweet id 'corpus:1' also comes from another file"):
        read_corpus(tmp_path)


LINCE_WITH_COMMENTS = (
    b"# id = a1\n"
    b"# label = positive\n"
    b"I\tlang1\n"
    b"love\tlang1\n"
    b"tacos\tlang2\n"
    b"\n"
    b"# label = negative\n"
    b"#mal\tlang2\n"
    b"dia\tlang2\n"
)


def test_lince_label_comments(tmp_path):
    path = write(tmp_path, "lince.txt", LINCE_WITH_COMMENTS)
    result = read_corpus_file(path, pair="spanglish")
    frame = result.frame

    assert result.counts[str(path)].format == "lince"
    assert list(frame["id"]) == ["lince:a1", "lince:2"]
    assert list(frame["label"]) == [2, 0]
    assert list(frame["line"]) == [1, 7]
    assert frame.iloc[1]["tokens"] == ["#mal", "dia"]
    assert frame.iloc[0]["langs"] == ["en", "en", "es"]


def test_lince_label_file(tmp_path):
    tokens = b"I\tlang1\nlove\tlang1\ntacos\tlang2\n\n#mal\tlang2\ndia\tlang2\n"
    path = write(tmp_path, "spanglish_lince.txt", tokens)
    write(tmp_path, "spanglish_lince.labels", b"positive\r\nnegative\r\n")
    result = read_corpus(tmp_path)

    assert list(result.frame["id"]) == ["spanglish_lince:1", "spanglish_lince:2"]
    assert list(result.frame["label"]) == [2, 0]
    assert list(result.frame["pair"]) == ["spanglish", "spanglish"]
    assert list(result.counts) == [str(path)]


def test_lince_label_file_count_mismatch(tmp_path):
    write(tmp_path, "x.txt", b"I\tlang1\n\nyo\tlang2\n")
    write(tmp_path, "x.labels", b"positive\n")
    with pytest.raises(DataError, match=r"x\.labels: has 1 labels but .*x\.txt has 2 tweets"):
        read_corpus_file(tmp_path / "x.txt")


def test_lince_missing_label(tmp_path):
    path = write(tmp_path, "x.txt", b"# label = positive\nI\tlang1\n\nyo\tlang2\n")
    with pytest.raises(DataError, match=r"x\.txt:4: tweet has no '# label = \.\.\.' comment"):
        read_corpus_file(path)


def test_lince_label_comment_disagrees(tmp_path):
    path = write(tmp_path, "x.txt", b"# label = negative\nI\tlang1\n\nyo\tlang2\n")
    write(tmp_path, "x.labels", b"positive\nneutral\n")
    result = read_corpus_file(path, mode="lenient", pair="spanglish")

    assert list(result.frame["id"]) == ["x:2"]
    assert list(result.frame["label"]) == [1]
    assert [(reject.line, reject.reason) for reject in result.rejects] == [(1, "invalid_label")]


def test_lince_file_comment_not_a_tweet(tmp_path):
    path = write(tmp_path, "x.txt", b"# corpus: demo\n\n# label = positive\nhola\tlang2\n")
    result = read_corpus_file(path, pair="spanglish")

    assert list(result.frame["id"]) == ["x:1"]
    assert list(result.frame["line"]) == [3]
    assert result.counts[str(path)].tweets == 1
