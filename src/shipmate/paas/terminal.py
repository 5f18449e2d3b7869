"""The terminal an SSH client asked for (``ssh -t``), as ``enter`` gets it (pure).

Rules (docs/paas.md, "enter" states them for users):

- The client's ``TERM`` reaches the container when it is a plain terminal name (letters,
  digits, ``.``, ``_``, ``+``, ``-``; at most 64 characters); anything else becomes
  ``xterm``, Docker's own default for ``docker exec -t``.
- The window size is the client's, as ``struct winsize`` (rows, columns, pixel width, pixel
  height); a client that sends no size (``ssh -tt`` from a pipe) gets 80x24, as a console.
- An exit status is the command's; a command killed by signal N exits 128+N, as a shell says.
"""

from __future__ import annotations

import dataclasses
import re
import struct

DEFAULT_TERM = "xterm"
_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_MAX = 0xFFFF  # the fields of struct winsize are unsigned short


def term_name(requested: str) -> str:
    """The ``TERM`` to give the command for what the client requested."""
    return requested if _TERM.fullmatch(requested) else DEFAULT_TERM


def winsize(width: int, height: int, pixwidth: int = 0, pixheight: int = 0) -> bytes:
    """``struct winsize`` for ``TIOCSWINSZ`` from an SSH window size (columns, rows, pixels);
    out-of-range values are clamped, a zero size becomes 80x24."""
    def clamp(value: int) -> int:
        return max(0, min(int(value), _MAX))

    cols, rows = clamp(width), clamp(height)
    if not cols or not rows:
        cols, rows = 80, 24
    return struct.pack("HHHH", rows, cols, clamp(pixwidth), clamp(pixheight))


def exit_status(returncode: int) -> int:
    """The SSH exit status for a process's return code (negative: killed by that signal)."""
    if returncode < 0:
        return min(128 - returncode, 255)
    return min(returncode, 255)


@dataclasses.dataclass(frozen=True)
class Terminal:
    """The pseudo-terminal an SSH client requested: its ``TERM`` (already checked with
    :func:`term_name`) and its window size as ``struct winsize``."""

    term: str
    size: bytes

    @classmethod
    def requested(cls, term: str, width: int, height: int, pixwidth: int = 0,
                  pixheight: int = 0) -> Terminal:
        """The terminal for a client's ``pty-req`` (its terminal type and size)."""
        return cls(term_name(term), winsize(width, height, pixwidth, pixheight))
