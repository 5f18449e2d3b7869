"""The client of the local daemon's HTTP API over its unix socket (``config.socket``).

It speaks just enough HTTP/1.1 for the daemon's API on asyncio's streams: one request per
connection (``Connection: close``), a body by length, chunked or up to the close. Only the
standard library: a thin command (``apps:list``, ``fleet list-units``) must not pay for
importing aiohttp. Errors come back as :class:`ShipmateError` subclasses rebuilt from the
API's JSON error body; a daemon that does not answer is a :class:`DaemonUnavailableError`.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shipmate.clock import within
from shipmate.errors import DaemonUnavailableError, ShipmateError, from_dict

_NO_DAEMON_HINT = "start it with `shipmate up` (background) or `shipmate daemon` (foreground)"
CONNECT_TIMEOUT = 5.0
_HEAD_LIMIT = 1 << 20
_PATH_SAFE = "/:@-._~!$&'()*+,;="
# No answer, a cut one, or one that is not HTTP: the daemon is not (properly) there.
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
#: Who a request is made for, in the audit trail: the SSH key's name, which the SSH server
#: puts in the CLI's environment as ACTOR_ENV (``paas.sshpolicy.REMOTE_ENV``). The daemon
#: trusts it on its unix socket only (``web.audit_http``).
ACTOR_HEADER = "X-Shipmate-Actor"
ACTOR_ENV = "SHIPMATE_SSH_KEY"


class _Response:
    """The status, headers and body of one answer, read from the connection."""

    def __init__(self, status: int, headers: dict[str, str], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.status, self.headers = status, headers
        self._reader, self._writer = reader, writer

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        reader = self._reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
                yield await reader.readexactly(size)
                await reader.readexactly(2)  # the CRLF after each chunk
            return
        length = self.headers.get("content-length")
        if length is None:  # the body ends with the connection
            while data := await reader.read(65536):
                yield data
            return
        left = int(length)
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def lines(self) -> AsyncIterator[str]:
        """The body's text lines as they arrive, without their line ends."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            *done, pending = pending.split(b"\n")
            for line in done:
                yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")

    def close(self) -> None:
        """Drop the connection."""
        self._writer.close()


class DaemonClient:
    """Talks to ``shipmate daemon`` over its unix socket ``socket``."""

    def __init__(self, socket: Path | str, *, timeout: float = 60.0) -> None:
        self.socket = str(socket)
        self.timeout = timeout

    def _unavailable(self, exc: BaseException) -> DaemonUnavailableError:
        return DaemonUnavailableError(
            f"no Shipmate daemon answers at {self.socket} ({type(exc).__name__})",
            hint=_NO_DAEMON_HINT,
        )

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Send one request; return the decoded JSON answer or raise the daemon's error."""
        limit = timeout or self.timeout
        try:
            async with asyncio.timeout(limit):
                resp = await self._send(method, path, json_body, params, None)
                try:
                    body = await resp.read()
                finally:
                    resp.close()
        except TimeoutError as exc:
            raise DaemonUnavailableError(
                f"the daemon did not answer {method} {path} within {limit}s",
                hint="check `shipmate status` and the daemon log",
            ) from exc
        except _BROKEN as exc:
            raise self._unavailable(exc) from exc
        return _decode(resp.status, body)

    async def stream(self, method: str, path: str, *, json_body: Any = None,
                     params: dict[str, str] | None = None,
                     data: bytes | AsyncIterator[bytes] | None = None) -> AsyncIterator[str]:
        """Send one request and yield the answer's text lines as they arrive. A line that is
        a JSON object with an ``"error"`` key ends the stream by raising that error. ``data``
        given as chunks is sent as they come (chunked), never held whole."""
        try:
            resp = await self._send(method, path, json_body, params, data)
        except (*_BROKEN, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        try:
            if resp.status >= 400:
                _decode(resp.status, await resp.read())
            async for line in resp.lines():
                if line.startswith('{"error"'):
                    raise from_dict(json.loads(line)["error"])
                yield line
        except _BROKEN as exc:
            raise self._unavailable(exc) from exc
        finally:
            resp.close()

    async def download(self, method: str, path: str, *, json_body: Any = None
                       ) -> AsyncIterator[bytes]:
        """Send one request and yield the answer's body as raw chunks (a dump, a file)."""
        try:
            resp = await self._send(method, path, json_body, None, None)
        except (*_BROKEN, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        try:
            if resp.status >= 400:
                _decode(resp.status, await resp.read())
            async for chunk in resp.chunks():
                yield chunk
        except _BROKEN as exc:
            raise self._unavailable(exc) from exc
        finally:
            resp.close()

    async def _send(self, method: str, path: str, json_body: Any,
                    params: dict[str, str] | None,
                    data: bytes | AsyncIterator[bytes] | None) -> _Response:
        """Connect, send the request, read the answer's head."""
        target = urllib.parse.quote(path, safe=_PATH_SAFE)
        if params:
            target += "?" + urllib.parse.urlencode(params)
        headers = {"Host": "shipmate", "Connection": "close"}
        actor = os.environ.get(ACTOR_ENV, "")
        if actor and actor.isascii() and actor.isprintable() and len(actor) <= 64:
            headers[ACTOR_HEADER] = actor
        chunks = data if data is not None and not isinstance(data, bytes) else None
        body = data if isinstance(data, bytes) else b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        if chunks is not None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(body))
        reader, writer = await within(
            asyncio.open_unix_connection(self.socket, limit=_HEAD_LIMIT), CONNECT_TIMEOUT)
        try:
            head = f"{method} {target} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            if chunks is not None:
                async for chunk in chunks:
                    if chunk:
                        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
            status, answer_headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        except BaseException:
            writer.close()
            raise
        return _Response(status, answer_headers, reader, writer)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and (lower-cased) headers of an answer's head; ValueError if malformed."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(rest.split(" ", 1)[0]), headers


def _decode(status: int, body: bytes) -> Any:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if status >= 400:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise from_dict(data["error"])
        raise ShipmateError(f"daemon answered HTTP {status}: {body[:200]!r}")
    return data
