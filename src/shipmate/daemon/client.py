"""The CLI's client of the local daemon's HTTP API (a unix socket by default)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from shipmate.config import Config
from shipmate.errors import DaemonUnavailableError, ShipmateError, from_dict

_NO_DAEMON_HINT = "start it with `shipmate up` (background) or `shipmate daemon` (foreground)"


class DaemonClient:
    """Talks to ``shipmate daemon`` over ``config.socket``. Errors come back as
    :class:`ShipmateError` subclasses rebuilt from the API's JSON error body."""

    def __init__(self, config: Config, *, timeout: float = 60.0) -> None:
        self.config = config
        self.timeout = timeout

    def _session(self, timeout: float | None) -> aiohttp.ClientSession:
        connector = aiohttp.UnixConnector(path=str(self.config.socket))
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=5),
        )

    def _unavailable(self, exc: Exception) -> DaemonUnavailableError:
        return DaemonUnavailableError(
            f"no Shipmate daemon answers at {self.config.socket} ({type(exc).__name__})",
            hint=_NO_DAEMON_HINT,
        )

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Send one request; return the decoded JSON answer or raise the daemon's error."""
        try:
            async with self._session(timeout or self.timeout) as session, session.request(
                method, "http://shipmate" + path, json=json_body, params=params
            ) as resp:
                body = await resp.read()
                return _decode(resp.status, body)
        except (aiohttp.ClientConnectionError, FileNotFoundError) as exc:
            raise self._unavailable(exc) from exc
        except TimeoutError as exc:
            raise DaemonUnavailableError(
                f"the daemon did not answer {method} {path} within {timeout or self.timeout}s",
                hint="check `shipmate status` and the daemon log",
            ) from exc

    async def stream(self, method: str, path: str, *, json_body: Any = None,
                     params: dict[str, str] | None = None,
                     data: bytes | None = None) -> AsyncIterator[str]:
        """Send one request and yield the answer's text lines as they arrive. A line that is
        a JSON object with an ``"error"`` key ends the stream by raising that error."""
        try:
            async with self._session(None) as session, session.request(
                method, "http://shipmate" + path, json=json_body, params=params, data=data
            ) as resp:
                if resp.status >= 400:
                    _decode(resp.status, await resp.read())
                async for raw in resp.content:
                    line = raw.decode(errors="replace").rstrip("\n")
                    if line.startswith('{"error"'):
                        raise from_dict(json.loads(line)["error"])
                    yield line
        except (aiohttp.ClientConnectionError, FileNotFoundError) as exc:
            raise self._unavailable(exc) from exc


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
