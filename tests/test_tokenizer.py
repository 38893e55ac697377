"""The student WordPiece tokenizer: special ids, encoding, saving, reloading and input checks."""

from collections import Counter
from pathlib import Path

import pytest

from rlkd.tokenizer import load_student_tokenizer, train_wordpiece_tokenizer

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)

# Each text appears three times, so its words pass the default min_frequency of 2.
TRAINING_TEXTS = [
    "Hola amigo, la canción es buena",
    "hola hola que tal la canción",
    "I love this canción so much lol",
    "Me encanta la canción de mi amigo",
    "hola, what is up amigo",
    "Qué buena canción 😀",
] * 3

VOCAB_SIZE = 200

# Number of token lines read from the real corpus file.
CORPUS_TOKEN_LINES = 200


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("student") / "tokenizer"
    tokenizer = train_wordpiece_tokenizer(TRAINING_TEXTS, directory, vocab_size=VOCAB_SIZE)
    return tokenizer, directory


def read_sentimix_tweets(path: Path, max_token_lines: int) -> list[list[str]]:
    """Read tweets as token lists from a SentiMix file, stopping after `max_token_lines` token lines."""
    tweets: list[list[str]] = []
    current: list[str] = []
    token_lines = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if fields[0] == "meta":
            if current:
                tweets.append(current)
            current = []
            continue
        if not line.strip():
            continue
        current.append(fields[0])
        token_lines += 1
        if token_lines >= max_token_lines:
            break
    if current:
        tweets.append(current)
    return tweets


def test_special_token_ids(trained):
    tokenizer, _ = trained
    expected = {"[PAD]": PAD_ID, "[UNK]": UNK_ID, "[CLS]": CLS_ID, "[SEP]": SEP_ID, "[MASK]": MASK_ID}

    for token, token_id in expected.items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id, token
    assert tokenizer.pad_token_id == PAD_ID
    assert tokenizer.unk_token_id == UNK_ID
    assert tokenizer.cls_token_id == CLS_ID
    assert tokenizer.sep_token_id == SEP_ID
    assert tokenizer.mask_token_id == MASK_ID
    assert tokenizer.model_max_length == 512


def test_reload_offline_gives_same_ids(trained, monkeypatch):
    tokenizer, directory = trained
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = ["hola amigo", "la canción es buena 😀", "I love this so much"]

    reloaded = load_student_tokenizer(directory)

    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.pad_token_id == PAD_ID
    assert reloaded.mask_token_id == MASK_ID
    assert reloaded.model_max_length == 512


def test_unseen_emoji_maps_to_unk(trained):
    tokenizer, _ = trained
    assert not any("🦩" in text for text in TRAINING_TEXTS)
    hola_id = tokenizer.convert_tokens_to_ids("hola")
    assert hola_id != UNK_ID

    ids = tokenizer("hola 🦩")["input_ids"]

    assert ids == [CLS_ID, hola_id, UNK_ID, SEP_ID]


def test_batch_adds_special_tokens_and_pads(trained):
    tokenizer, _ = trained

    batch = tokenizer(["hola", "la canción es buena"], padding=True)

    short_ids, long_ids = batch["input_ids"]
    short_mask, long_mask = batch["attention_mask"]
    assert len(short_ids) == len(long_ids)
    assert long_ids[0] == CLS_ID
    assert long_ids[-1] == SEP_ID
    assert UNK_ID not in long_ids
    assert set(long_mask) == {1}
    assert short_ids[:3] == [CLS_ID, tokenizer.convert_tokens_to_ids("hola"), SEP_ID]
    assert short_ids[3:] == [PAD_ID] * (len(long_ids) - 3)
    assert short_mask == [1, 1, 1] + [0] * (len(long_ids) - 3)


def test_accents_kept_and_lowercased(trained):
    tokenizer, _ = trained

    ids = tokenizer("CANCIÓN Qué", add_special_tokens=False)["input_ids"]

    assert UNK_ID not in ids
    assert tokenizer.decode(ids) == "canción qué"
    assert ids == tokenizer("canción qué", add_special_tokens=False)["input_ids"]


def test_case_kept_without_lowercase(tmp_path):
    tokenizer = train_wordpiece_tokenizer(
        TRAINING_TEXTS, tmp_path / "cased", vocab_size=VOCAB_SIZE, lowercase=False
    )

    ids = tokenizer("Hola Qué", add_special_tokens=False)["input_ids"]

    assert UNK_ID not in ids
    assert tokenizer.decode(ids) == "Hola Qué"
    assert tokenizer.convert_tokens_to_ids("Hola") != tokenizer.convert_tokens_to_ids("hola")
    # "Canción" never occurs capitalized in the training texts, so it is unknown.
    assert tokenizer("Canción", add_special_tokens=False)["input_ids"] == [UNK_ID]


def test_vocab_size_respected(trained, tmp_path):
    tokenizer, _ = trained
    assert len(tokenizer) <= VOCAB_SIZE

    # 150 distinct letters would need 300 entries (`c` and `##c`) without the alphabet limit.
    letters = [chr(code_point) for code_point in range(0x0100, 0x0100 + 150)]
    texts = [" ".join(letter * 3 for letter in letters)] * 2
    small = train_wordpiece_tokenizer(texts, tmp_path / "small", vocab_size=105, lowercase=False)

    assert len(small) <= 105
    assert small.convert_tokens_to_ids("[MASK]") == MASK_ID


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "texts is empty"),
        (iter([]), "texts is empty"),
        (["", "   "], "texts contains only blank strings"),
    ],
)
def test_empty_texts_rejected(tmp_path, texts, message):
    directory = tmp_path / "tokenizer"

    with pytest.raises(ValueError, match=message):
        train_wordpiece_tokenizer(texts, directory, vocab_size=VOCAB_SIZE)

    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("vocab_size", [0, 104, 300.0, True])
def test_small_vocab_size_rejected(tmp_path, vocab_size):
    with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 105"):
        train_wordpiece_tokenizer(TRAINING_TEXTS, tmp_path / "tokenizer", vocab_size=vocab_size)

    assert not (tmp_path / "tokenizer").exists()


def test_min_frequency_rejected(tmp_path):
    with pytest.raises(ValueError, match="min_frequency must be an integer >= 1, got 0"):
        train_wordpiece_tokenizer(TRAINING_TEXTS, tmp_path / "tokenizer", min_frequency=0)


def test_non_string_texts_rejected(tmp_path):
    with pytest.raises(TypeError, match="not a single string"):
        train_wordpiece_tokenizer("hola amigo", tmp_path / "tokenizer", vocab_size=VOCAB_SIZE)
    with pytest.raises(TypeError, match="got int at index 1"):
        train_wordpiece_tokenizer(["hola", 7], tmp_path / "tokenizer", vocab_size=VOCAB_SIZE)


def test_load_missing_directory(tmp_path):
    missing = tmp_path / "no-such-tokenizer"

    with pytest.raises(FileNotFoundError) as raised:
        load_student_tokenizer(missing)

    assert str(missing) in str(raised.value)


def test_load_directory_without_tokenizer(tmp_path):
    (tmp_path / "notes.txt").write_text("not a tokenizer", encoding="utf-8")

    with pytest.raises(ValueError) as raised:
        load_student_tokenizer(tmp_path)

    assert str(tmp_path) in str(raised.value)
    assert "tokenizer.json is missing" in str(raised.value)


def test_load_corrupt_tokenizer_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("not json", encoding="utf-8")

    with pytest.raises(ValueError) as raised:
        load_student_tokenizer(tmp_path)

    assert f"failed to load the student tokenizer from {tmp_path}" in str(raised.value)


def test_retrain_replaces_tokenizer(tmp_path):
    directory = tmp_path / "tokenizer"
    train_wordpiece_tokenizer(TRAINING_TEXTS, directory, vocab_size=VOCAB_SIZE)
    first_vocab = load_student_tokenizer(directory).get_vocab()

    train_wordpiece_tokenizer(["bonjour le monde"] * 2, directory, vocab_size=VOCAB_SIZE)

    second_vocab = load_student_tokenizer(directory).get_vocab()
    assert "bonjour" in second_vocab
    assert second_vocab != first_vocab
    # No staging or previous folder is left beside the tokenizer.
    assert [path.name for path in tmp_path.iterdir()] == ["tokenizer"]


def test_other_directory_not_overwritten(tmp_path):
    directory = tmp_path / "results"
    directory.mkdir()
    (directory / "scores.csv").write_text("f1\n0.5\n", encoding="utf-8")

    with pytest.raises(FileExistsError, match="non-empty directory without tokenizer.json"):
        train_wordpiece_tokenizer(TRAINING_TEXTS, directory, vocab_size=VOCAB_SIZE)

    assert [path.name for path in directory.iterdir()] == ["scores.csv"]
    assert [path.name for path in tmp_path.iterdir()] == ["results"]


def test_real_tweets_round_trip(sentimix_dir, tmp_path):
    tweets = read_sentimix_tweets(sentimix_dir / "spanglish_trial.txt", CORPUS_TOKEN_LINES)
    assert len(tweets) >= 10
    texts = [" ".join(tokens) for tokens in tweets]
    word_counts = Counter(token.lower() for tokens in tweets for token in tokens)

    tokenizer = train_wordpiece_tokenizer(texts, tmp_path / "sentimix", vocab_size=500, min_frequency=1)

    first_tweet = tweets[0]
    frequent_words = [token for token in first_tweet if token.isalpha() and word_counts[token.lower()] >= 2]
    assert len(frequent_words) >= 2, first_tweet
    for word in frequent_words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert UNK_ID not in ids, word
        assert tokenizer.decode(ids) == word.lower()
    assert UNK_ID not in tokenizer(texts[0])["input_ids"]
    assert len(tokenizer) <= 500
