"""Recognising the next request on a keep-alive connection without aiohttp, for the one case
worth answering straight from the worker thread that has just sent a large hit on it
(:mod:`followloop`): a plain ``GET`` that a cached body answers as it is.

This reader only recognises; it never refuses or answers. Whatever it does not know for sure
(another method, HTTP/1.0, a header that changes the answer, a byte it does not expect, a head
not yet complete) is ``None``, and the request stays in the socket for aiohttp to read, parse
and answer by the usual rules. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from email.utils import formatdate

MAX_HEAD = 8190  # aiohttp's limit for one line; a longer head is left to aiohttp

# a target of RFC 3986 characters only (path, query, percent-escapes, absolute form); any
# character the URL grammar does not allow (quote, #, <, >, backslash, ^, backtick, braces,
# |) is left to aiohttp to judge
_REQUEST_LINE = re.compile(rb"GET ([A-Za-z0-9\-._~!$&'()*+,;=:@/?%]+) HTTP/1\.1")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([!-~]+(?:[ \t]+[!-~]+)*)?[ \t]*")
# headers after which a body is not simply "the cached body, 200": aiohttp decides those
_ANSWER_CHANGING = frozenset({
    b"range", b"if-range", b"if-modified-since", b"if-unmodified-since", b"if-none-match",
    b"if-match", b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te"})


@dataclasses.dataclass(frozen=True)
class PlainGet:
    """A complete ``GET`` head: its raw target (as aiohttp's ``raw_path``), its ``Accept``
    header and its length in bytes (what to consume once it is answered)."""

    target: str
    accept: str
    length: int


def plain_get(data: bytes) -> PlainGet | None:
    """The request at the start of ``data`` if it is a complete, plain keep-alive ``GET``."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    accept: bytes | None = None
    for raw in lines[1:]:
        field = _FIELD.fullmatch(raw)
        if field is None:  # obs-fold, a control byte, a non-ASCII byte, no colon...
            return None
        name, value = field.group(1).lower(), field.group(2) or b""
        if name in _ANSWER_CHANGING:
            return None
        if name == b"connection" and value.lower() != b"keep-alive":
            return None
        if name == b"accept" and accept is None:
            accept = value
    return PlainGet(line.group(1).decode("ascii"), (accept or b"").decode("ascii"), end + 4)


def validators(st: os.stat_result) -> tuple[str, str]:
    """``(ETag, Last-Modified)`` as aiohttp's FileResponse derives them from a file's stat, so
    every path gives a client the same validators."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"', _http_date(int(st.st_mtime))


def body_headers(st: os.stat_result, content_type: str, how: str) -> dict[str, str]:
    """The headers of a whole cached body whose stat is ``st``, served as ``how`` (HIT...):
    what :class:`hits.SendfileResponse` and a follow-on answer both send."""
    etag, last_modified = validators(st)
    return {"Content-Type": content_type, "X-Cache": how, "ETag": etag,
            "Last-Modified": last_modified, "Accept-Ranges": "bytes"}


def hit_head(st: os.stat_result, content_type: str, server: str, now: float) -> bytes | None:
    """The head of a ``200`` answering a hit with the whole body whose stat is ``st``
    (:func:`body_headers`, then what aiohttp adds). None if ``content_type`` could not go in
    a header."""
    if not _header_value(content_type):
        return None
    fields = {**body_headers(st, content_type, "HIT"), "Content-Length": str(st.st_size),
              "Date": _http_date(int(now)), "Server": server}
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"HTTP/1.1 200 OK\r\n{lines}\r\n".encode("ascii")


@functools.lru_cache(maxsize=256)
def _header_value(value: str) -> bool:
    """Whether ``value`` can be sent as a header's value as it is (not empty)."""
    return bool(value) and value.isascii() and _FIELD.fullmatch(
        b"X: " + value.encode("ascii")) is not None


@functools.lru_cache(maxsize=1024)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)
