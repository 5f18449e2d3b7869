"""The follow-on request reader: it recognises plain keep-alive GETs and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipmate.cache.nextrequest import MAX_HEAD, PlainGet, hit_head, plain_get

PATH = "/deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"


def head(*lines: str, request: str = f"GET {PATH} HTTP/1.1") -> bytes:
    return ("\r\n".join([request, *lines]) + "\r\n\r\n").encode()


def test_a_plain_get_with_its_length_and_accept() -> None:
    data = head("Host: 127.0.0.1:3142", "User-Agent: Debian APT-HTTP/1.3 (2.6.1)",
                "Accept: text/html", "Accept: */*", "Connection: Keep-Alive",
                "Cache-Control: max-age=0")
    following = b"GET /next HTTP/1.1\r\n\r\n"
    assert plain_get(data + following) == PlainGet(PATH, "text/html", len(data))


def test_proxy_form_and_no_headers() -> None:
    target = "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
    data = head(request=f"GET {target} HTTP/1.1")
    assert plain_get(data) == PlainGet(target, "", len(data))


def test_empty_header_value_and_spaces_around_it() -> None:
    assert plain_get(head("X-Empty:", "Accept:  a/b  ")) == PlainGet(
        PATH, "a/b", len(head("X-Empty:", "Accept:  a/b  ")))


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="nothing yet"),
    pytest.param(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n".encode(), id="head not complete"),
    pytest.param(head(request=f"HEAD {PATH} HTTP/1.1"), id="HEAD"),
    pytest.param(head(request=f"POST {PATH} HTTP/1.1"), id="POST"),
    pytest.param(head(request=f"get {PATH} HTTP/1.1"), id="lower-case method"),
    pytest.param(head(request=f"GET {PATH} HTTP/1.0"), id="HTTP/1.0"),
    pytest.param(head(request=f"GET  {PATH} HTTP/1.1"), id="two spaces"),
    pytest.param(head(request="GET /a b HTTP/1.1"), id="space in the target"),
    pytest.param(head(request="GET /a\x00b HTTP/1.1"), id="NUL in the target"),
    pytest.param(head(request="GET /caf\u00e9 HTTP/1.1"), id="non-ASCII target"),
    *(pytest.param(head(request=f"GET /a{c}b HTTP/1.1"), id=f"{c!r} in the target")
      for c in '"#<>\\^`{|}'),
    pytest.param(head("Range: bytes=0-9"), id="Range"),
    pytest.param(head("If-Range: x"), id="If-Range"),
    pytest.param(head("If-None-Match: x"), id="If-None-Match"),
    pytest.param(head("if-modified-since: x"), id="If-Modified-Since, any case"),
    pytest.param(head("If-Unmodified-Since: x"), id="If-Unmodified-Since"),
    pytest.param(head("If-Match: x"), id="If-Match"),
    pytest.param(head("Content-Length: 5"), id="a body"),
    pytest.param(head("Transfer-Encoding: chunked"), id="a chunked body"),
    pytest.param(head("Expect: 100-continue"), id="Expect"),
    pytest.param(head("Upgrade: websocket", "Connection: Upgrade"), id="Upgrade"),
    pytest.param(head("Connection: close"), id="Connection: close"),
    pytest.param(head("Connection: keep-alive, Upgrade"), id="a Connection list"),
    pytest.param(head("Host: x", " folded"), id="obs-fold"),
    pytest.param(head("Host x"), id="no colon"),
    pytest.param(head("Ho st: x"), id="space in a name"),
    pytest.param(head("Host : x"), id="space before the colon"),
    pytest.param(head("Host: a\x00b"), id="NUL in a value"),
    pytest.param(head("Host: a\x7fb"), id="DEL in a value"),
    pytest.param(head("Host: a\rb"), id="bare CR in a value"),
    pytest.param(head("Host: a\nb"), id="bare LF"),
    pytest.param(head("User-Agent: caf\u00e9"), id="non-ASCII value"),
    pytest.param(head("X: " + "a" * MAX_HEAD), id="longer than aiohttp's limit"),
])
def test_anything_else_is_left_to_aiohttp(data: bytes) -> None:
    assert plain_get(data) is None


def test_hit_head_has_the_headers_of_a_hit(tmp_path: Path) -> None:
    body = tmp_path / "b"
    body.write_bytes(b"x" * 70_000)
    os.utime(body, (1_700_000_000, 1_700_000_000))
    got = hit_head(body.stat(), "application/vnd.debian.binary-package", "S/1", 1_700_000_100)
    assert got is not None
    lines = got.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK" and got.endswith(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:-2])
    assert fields == {
        "Content-Type": "application/vnd.debian.binary-package", "X-Cache": "HIT",
        "ETag": f'"{body.stat().st_mtime_ns:x}-{70_000:x}"',
        "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT", "Accept-Ranges": "bytes",
        "Content-Length": "70000", "Date": "Tue, 14 Nov 2023 22:15:00 GMT", "Server": "S/1"}


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "caf\u00e9", ""])
def test_hit_head_refuses_a_content_type_that_is_not_a_header_value(
        tmp_path: Path, content_type: str) -> None:
    (tmp_path / "b").write_bytes(b"x")
    assert hit_head((tmp_path / "b").stat(), content_type, "S/1", 0) is None
