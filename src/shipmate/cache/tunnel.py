"""CONNECT tunnels: only to allowlisted hosts on port 443, bytes relayed as they are (TLS
inside, so nothing is or could be cached)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from shipmate.cache.policy import Allowlist
from shipmate.cache.stats import Stats
from shipmate.clock import within

IDLE_SECONDS = 300.0


class _Inbound(asyncio.Protocol):
    """Takes over the client's transport from aiohttp once the tunnel is up."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self) -> bool:
        self.queue.put_nowait(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(b"")


def _split_authority(authority: str) -> tuple[str, int] | None:
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]").lower().rstrip("."), int(port)


async def tunnel(request: web.BaseRequest, allowlist: Allowlist,
                 stats: Stats) -> web.StreamResponse:
    """Answer a CONNECT: 403 unless allowed, else relay bytes both ways until either closes."""
    parsed = _split_authority(request.raw_path)
    if parsed is None or not allowlist.allows_connect(*parsed):
        stats.refused += 1
        return web.Response(status=403, text="CONNECT only to allowlisted hosts on port 443\n")
    try:
        reader, writer = await within(asyncio.open_connection(*parsed), 15)
    except (OSError, TimeoutError):
        return web.Response(status=502, text=f"cannot reach {parsed[0]}:{parsed[1]}\n")
    transport = request.transport
    assert transport is not None
    inbound = _Inbound()
    transport.set_protocol(inbound)
    transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    try:
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.gather(_client_to_upstream(inbound, writer),
                                 _upstream_to_client(reader, transport))
    finally:
        writer.close()
        transport.close()
    # aiohttp must not write a response on the hijacked connection: end its handler quietly
    raise asyncio.CancelledError


async def _client_to_upstream(inbound: _Inbound, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await within(inbound.queue.get(), IDLE_SECONDS)
        if not data:
            with contextlib.suppress(OSError):
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def _upstream_to_client(reader: asyncio.StreamReader,
                              transport: asyncio.BaseTransport) -> None:
    assert isinstance(transport, asyncio.WriteTransport)
    while True:
        data = await within(reader.read(65536), IDLE_SECONDS)
        if not data:
            transport.close()
            return
        transport.write(data)
