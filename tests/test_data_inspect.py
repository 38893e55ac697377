"""inspect_corpus: report tables, Markdown and the files it writes."""

import pytest

from rlkd.data import DataError, InspectReport, inspect_corpus

SPANGLISH = (
    b"meta\t1\tpositive\n"
    b"Hola\tlang2\n"
    b"my\tlang1\n"
    b"friend\tlang1\n"
    b"\n"
    b"meta\t2\tnegative\n"
    b"la\tlang2\n"
    b"casa\tlang2\n"
    b"\n"
    b"meta\t3\tpostive\n"
    b"mal\tlang2\n"
    b"\n"
    b"meta\t4\tneutral\n"
    b"bro\tlang3\n"
    b"si\tlang2\n"
)
HINGLISH = b"meta\t1\tneutral\nyaar\tHin\nthis\tEng\n"


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "spanglish_a.txt").write_bytes(SPANGLISH)
    (folder / "hinglish_b.txt").write_bytes(HINGLISH)
    return folder


def test_report_by_file(corpus):
    report = inspect_corpus(corpus)
    row = report.by_file.loc[str(corpus / "spanglish_a.txt")]

    assert isinstance(report, InspectReport)
    assert report.mode == "lenient"
    assert row["tweets"] == 3
    assert (row["negative"], row["neutral"], row["positive"]) == (1, 1, 1)
    # CMI: 100 * (1 - 2/3), 0, 0 (the unknown tag became "other").
    assert row["mean_cmi"] == pytest.approx(100 / 9)
    assert row["rejected"] == 1
    assert row["invalid_label"] == 1
    assert row["unknown_tag"] == 1
    assert report.by_file.loc[str(corpus / "hinglish_b.txt"), "invalid_label"] == 0


def test_report_by_pair_and_dominant_lang(corpus):
    report = inspect_corpus(corpus)

    assert report.by_pair.loc["spanglish", "tweets"] == 3
    assert report.by_pair.loc["spanglish", "rejected"] == 1
    assert report.by_pair.loc["hinglish", "tweets"] == 1
    assert report.by_pair.loc["hinglish", "mean_cmi"] == pytest.approx(50.0)
    assert report.by_dominant_lang["tweets"].to_dict() == {"en": 1, "es": 2, "hi": 1}
    assert "rejected" not in report.by_dominant_lang
    assert report.reject_reasons == {"invalid_label": 1, "unknown_tag": 1}


def test_report_markdown(corpus):
    markdown = inspect_corpus(corpus).to_markdown()

    assert markdown.startswith(f"# Data report: {corpus}\n")
    assert "2 files, 4 tweets kept, 1 rejected." in markdown
    assert "Rejects and repairs by reason: invalid_label 1, unknown_tag 1." in markdown
    assert "| pair | tweets | negative | neutral | positive | mean_cmi | rejected | invalid_label | unknown_tag |" in markdown
    assert "| spanglish | 3 | 1 (33.3%) | 1 (33.3%) | 1 (33.3%) | 11.1 | 1 | 1 | 1 |" in markdown
    assert "## By dominant language" in markdown


def test_report_files_written(corpus, tmp_path):
    out_dir = tmp_path / "out"
    report = inspect_corpus(corpus, out_dir)

    markdown = (out_dir / "data_report.md").read_text(encoding="utf-8")
    assert markdown.startswith(report.to_markdown())
    assert "![CMI histogram per pair](cmi_histogram.png)" in markdown
    assert (out_dir / "cmi_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_out_dir_writes_nothing(corpus):
    inspect_corpus(corpus)
    assert sorted(path.name for path in corpus.iterdir()) == ["hinglish_b.txt", "spanglish_a.txt"]


def test_report_strict_mode_raises(corpus):
    with pytest.raises(DataError, match="invalid label 'postive'"):
        inspect_corpus(corpus, mode="strict")
