"""Text a command reads from a file or from standard input, refused with one clear line when
it is not UTF-8 or too large (never a traceback, never the content)."""

from __future__ import annotations

import sys
from pathlib import Path

from shipmate.errors import ValidationError

MAX_INPUT = 4 * 2**20  # unit files, keys and recipes are far smaller


def decode(data: bytes, what: str) -> str:
    """``data`` as UTF-8 text; a ValidationError naming ``what`` and the byte offset if not."""
    if len(data) > MAX_INPUT:
        raise ValidationError(f"{what} is larger than {MAX_INPUT // 2**20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{what} is not UTF-8 text (byte {exc.start})",
                              hint="save the file as UTF-8") from None


def read_stdin(what: str) -> str:
    """Standard input as text (``what`` names it in errors: "the unit file")."""
    return decode(sys.stdin.buffer.read(MAX_INPUT + 1), what)


def read_file(path: str | Path, what: str) -> str:
    """A local file as text; ``-`` is standard input."""
    if str(path) == "-":
        return read_stdin(what)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT + 1)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    return decode(data, f"{path}")
