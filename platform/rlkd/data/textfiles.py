"""Decode corpus files as UTF-8 and split them into lines."""

from __future__ import annotations

from pathlib import Path

from rlkd.data.errors import DataError

BOM = "\ufeff"


def read_text(path: str | Path) -> str:
    """Read a file as UTF-8 and drop one leading byte order mark.

    Raises DataError naming the file and the line of the first invalid byte.
    This happens in lenient mode too: a file in another encoding would
    otherwise lose exactly the tweets with non-ASCII text, which skews the
    non-English share.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError.at(path, "file not found") from None
    except OSError as error:
        raise DataError.at(path, f"cannot read file: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataError.at(
            path,
            f"invalid UTF-8 byte 0x{data[error.start]:02x} at column {column}; save the file as UTF-8",
            line=line,
        ) from None
    return text.removeprefix(BOM)


def split_lines(text: str) -> list[str]:
    r"""Split text on LF, dropping a CR before each LF and the empty string after a final LF.

    str.splitlines() is not used because it also splits on characters that can
    occur inside a tweet (\x0b, \x0c, \x1c-\x1e, \x85, U+2028, U+2029).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def is_blank(line: str) -> bool:
    """Return whether a line separates records: empty or whitespace only, such as a lone tab."""
    return line.strip() == ""
