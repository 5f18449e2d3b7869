"""The cache's listening socket: the send buffer its connections get (real loopback sockets,
and the running cache's own connections as ``ss`` shows them)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.listener import listening_socket
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import get, running_cache, url

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def accepted(listener: socket.socket) -> Iterator[socket.socket]:
    """A connection the listener accepted from a client on loopback; closed after."""
    listener.setblocking(True)
    with listener, socket.create_connection(listener.getsockname()[:2]):
        conn, _ = listener.accept()
        with conn:
            yield conn


def send_buffer(conn: socket.socket) -> int:
    return conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def test_connections_get_the_send_buffer_asked_for() -> None:
    with accepted(listening_socket("127.0.0.1", 0, 256 * 1024)) as conn:
        assert send_buffer(conn) == 2 * 256 * 1024  # Linux keeps twice what it is asked for


def test_zero_leaves_the_kernels_autotuning() -> None:
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    with accepted(plain) as conn:
        kernels = send_buffer(conn)
    with accepted(listening_socket("127.0.0.1", 0, 0)) as conn:
        assert send_buffer(conn) == kernels != 2 * 512 * 1024


def test_a_port_in_use_is_refused_and_leaves_no_socket_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError, match="in use"):
            listening_socket("127.0.0.1", taken.getsockname()[1], 256 * 1024)
        assert len(os.listdir("/proc/self/fd")) == before


def server_send_buffers(port: int) -> list[int]:
    """``tb`` (the send buffer) of each established connection whose local port is ``port``,
    as ``ss -tm`` reports it."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return [int(tb) for tb in re.findall(r"\btb(\d+)", out)]


async def test_the_cache_serves_on_connections_with_the_buffer_set(
        tmp_path: Path, fake: FakeUpstream) -> None:
    body = b"x" * 3_000_000
    fake.files["/debian/pool/main/h/hello/hello_1.0_amd64.deb"] = body
    path = f"/{fake.authority}/debian/pool/main/h/hello/hello_1.0_amd64.deb"
    async with (running_cache(tmp_path, fake, cache_sndbuf=384 * 1024) as cache,
                aiohttp.ClientSession() as http):
        for _ in range(2):  # a miss, then a hit sent by a worker thread
            status, got, _ = await get(http, url(cache, path))
            assert (status, got) == (200, body)
        buffers = server_send_buffers(cache.port)
    assert buffers == [2 * 384 * 1024]  # Linux keeps twice what it is asked for
