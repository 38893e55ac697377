"""A BERT-style WordPiece tokenizer for the student, trained offline on the corpus text.

The tokenizer is built with the Hugging Face `tokenizers` library, wrapped as a
`transformers.PreTrainedTokenizerFast` and saved with `save_pretrained`, so
`AutoTokenizer.from_pretrained` and `load_student_tokenizer` read it back
without network access.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"

# Special tokens in id order: [PAD] is 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4.
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

# Minimum number of learned tokens beyond the special tokens. It is a chosen
# floor that rejects vocabularies too small to be useful, not a measured value.
MIN_LEARNED_TOKENS = 100

MODEL_MAX_LENGTH = 512
CONTINUING_SUBWORD_PREFIX = "##"
TOKENIZER_FILE = "tokenizer.json"


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    directory: str | Path,
    *,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a WordPiece tokenizer on `texts`, save it to `directory` and return it.

    `texts` is read once, so a generator over a large corpus works.
    `vocab_size` is the maximum number of tokens, special tokens included.
    Pairs of pieces seen fewer than `min_frequency` times are not merged into one token.

    The tokenizer is written to a temporary sibling folder and renamed into
    place, so a killed run leaves no half-written tokenizer at `directory`.
    An existing tokenizer at `directory` is replaced. Any other non-empty
    folder there raises FileExistsError.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not a single string")
    _check_vocab_size(vocab_size)
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an integer >= 1, got {min_frequency!r}")
    directory = Path(directory)
    _check_replaceable(directory)

    backend = _build_backend(lowercase)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # Each kept character takes up to two entries (`c` and `##c`), so this
        # limit keeps the vocabulary within vocab_size. Rarer characters map to [UNK].
        limit_alphabet=(vocab_size - len(SPECIAL_TOKENS)) // 2,
        continuing_subword_prefix=CONTINUING_SUBWORD_PREFIX,
        show_progress=False,
    )
    counter = _TextCounter(texts)
    backend.train_from_iterator(counter, trainer=trainer)
    if counter.texts_read == 0:
        raise ValueError("texts is empty. Pass at least one training text.")
    if counter.non_blank_texts == 0:
        raise ValueError(
            f"texts contains only blank strings ({counter.texts_read} read). Pass non-blank training text."
        )

    _check_special_token_ids(backend)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{CLS_TOKEN} $A {SEP_TOKEN}",
        pair=f"{CLS_TOKEN} $A {SEP_TOKEN} $B:1 {SEP_TOKEN}:1",
        special_tokens=[(CLS_TOKEN, SPECIAL_TOKENS.index(CLS_TOKEN)), (SEP_TOKEN, SPECIAL_TOKENS.index(SEP_TOKEN))],
    )
    backend.decoder = decoders.WordPiece(prefix=CONTINUING_SUBWORD_PREFIX)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        cls_token=CLS_TOKEN,
        sep_token=SEP_TOKEN,
        mask_token=MASK_TOKEN,
        model_max_length=MODEL_MAX_LENGTH,
    )
    _save_atomically(tokenizer, directory)
    logger.info(
        "Trained a WordPiece tokenizer with %d tokens on %d texts and saved it to %s",
        len(tokenizer),
        counter.texts_read,
        directory,
    )
    return tokenizer


def load_student_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `train_wordpiece_tokenizer` from local files only."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"student tokenizer directory not found: {directory}. Train one with train_wordpiece_tokenizer."
        )
    if not (directory / TOKENIZER_FILE).is_file():
        raise ValueError(f"{directory} is not a saved tokenizer because {TOKENIZER_FILE} is missing")

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        # transformers raises KeyError for a tokenizer.json without required fields.
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"failed to load the student tokenizer from {directory}: {first_line}") from error

    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise ValueError(
            f"{directory} contains a {type(tokenizer).__name__}, not a fast tokenizer. "
            "Retrain it with train_wordpiece_tokenizer."
        )
    return tokenizer


class _TextCounter:
    """Iterator over the training texts that checks their type and counts them."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.texts_read = 0
        self.non_blank_texts = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must contain strings, got {type(text).__name__} at index {self.texts_read}")
            self.texts_read += 1
            if text.strip():
                self.non_blank_texts += 1
            yield text


def _check_vocab_size(vocab_size: int) -> None:
    minimum = len(SPECIAL_TOKENS) + MIN_LEARNED_TOKENS
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be an integer >= {minimum} ({len(SPECIAL_TOKENS)} special tokens "
            f"+ {MIN_LEARNED_TOKENS} learned tokens), got {vocab_size!r}"
        )


def _build_backend(lowercase: bool) -> Tokenizer:
    backend = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN, continuing_subword_prefix=CONTINUING_SUBWORD_PREFIX))
    # strip_accents=None would follow `lowercase` and strip accents, which in
    # tokenizers 0.23 turns "canción" into "cancion" and deletes Devanagari vowel
    # signs of category Mn (the U+0941 in "हुआ"). Accents and vowel signs
    # change a word's meaning, so they are kept.
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        strip_accents=False,
        lowercase=lowercase,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return backend


def _check_special_token_ids(backend: Tokenizer) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual_id = backend.token_to_id(token)
        if actual_id != expected_id:
            raise RuntimeError(f"WordPiece trainer assigned {token} id {actual_id}, expected {expected_id}")


def _check_replaceable(directory: Path) -> None:
    """Raise unless `directory` is missing, empty or contains a saved tokenizer."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory. Choose another tokenizer directory.")
    if any(directory.iterdir()) and not (directory / TOKENIZER_FILE).is_file():
        raise FileExistsError(
            f"{directory} is a non-empty directory without {TOKENIZER_FILE}. "
            "Choose a new or empty directory so nothing else is overwritten."
        )


def _save_atomically(tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
    try:
        tokenizer.save_pretrained(staging)
        if directory.exists():
            # Move the old tokenizer aside first, because rename cannot replace
            # a non-empty directory. A kill between the two renames leaves no
            # tokenizer at `directory` and the old one in `previous`.
            previous = staging.with_suffix(".previous")
            directory.rename(previous)
            staging.rename(directory)
            shutil.rmtree(previous)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
