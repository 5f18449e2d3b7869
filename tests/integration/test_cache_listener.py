"""The cache's listening socket: the send buffer its connections get (real loopback sockets,
and the running cache's own connections, from this machine and from a container, as ``ss``
shows them)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from shipmate.cache.listener import is_own_address, listening_socket
from shipmate.cache.testing import FakeUpstream
from tests.integration.cache_helpers import get, running_cache, url
from tests.integration.test_cache_clients import BASE_IMAGE, bridge_gateway, require_image

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
        assert send_buffer(conn) == kernels


def test_a_port_in_use_is_refused_and_leaves_no_socket_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError, match="in use"):
            listening_socket("127.0.0.1", taken.getsockname()[1], 256 * 1024)
        assert len(os.listdir("/proc/self/fd")) == before


def server_send_buffers(port: int) -> dict[str, int]:
    """``tb`` (the send buffer) of each established connection whose local port is ``port``,
    by peer address, as ``ss -tm`` reports it."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return {peer.rpartition(":")[0].strip("[]"): int(tb) for peer, tb in
            re.findall(r"\S+:\d+\s+(\S+:\d+)\s+skmem:\([^)]*\btb(\d+)", out)}


async def test_the_cache_serves_on_connections_with_the_local_buffer(
        tmp_path: Path, fake: FakeUpstream) -> None:
    body = b"x" * 3_000_000
    fake.files["/debian/pool/main/h/hello/hello_1.0_amd64.deb"] = body
    path = f"/{fake.authority}/debian/pool/main/h/hello/hello_1.0_amd64.deb"
    async with (running_cache(tmp_path, fake) as cache, aiohttp.ClientSession() as http):
        for _ in range(2):  # a miss, then a hit sent by a worker thread
            status, got, _ = await get(http, url(cache, path))
            assert (status, got) == (200, body)
        buffers = server_send_buffers(cache.port)
    # cache_local_sndbuf's default, doubled: Linux keeps twice what it is asked for
    assert list(buffers.values()) == [2 * 512 * 1024]


async def test_a_container_gets_the_general_buffer_and_this_machine_the_local_one(
        tmp_path: Path, fake: FakeUpstream) -> None:
    await require_image(BASE_IMAGE)
    gateway = await bridge_gateway()
    async with running_cache(tmp_path, fake, cache_bind="0.0.0.0", cache_sndbuf=384 * 1024,
                             cache_local_sndbuf=256 * 1024) as cache:
        container = await asyncio.create_subprocess_exec(
            "docker", "run", "-i", "--rm", BASE_IMAGE, "bash", "-c",
            f"exec 3<>/dev/tcp/{gateway}/{cache.port} && read -r _",
            stdin=asyncio.subprocess.PIPE)
        try:
            with socket.create_connection((gateway, cache.port)):  # from this machine
                for _ in range(200):
                    buffers = server_send_buffers(cache.port)
                    if len(buffers) == 2:
                        break
                    await asyncio.sleep(0.1)
        finally:
            await container.communicate(b"done\n")
    # Docker masquerades this machine's connection to its main address; a container keeps its own
    by_origin = {is_own_address(ipaddress.ip_address(peer)): tb for peer, tb in buffers.items()}
    assert by_origin == {True: 2 * 256 * 1024, False: 2 * 384 * 1024}


def test_own_addresses_are_the_ones_a_socket_can_bind() -> None:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    here = ipaddress.ip_address(out.split(" inet ", 1)[1].split("/")[0])
    for ip, expected in [(here, True), (ipaddress.ip_address("127.0.0.1"), True),
                         (ipaddress.ip_address("::1"), True),
                         (ipaddress.ip_address("198.51.100.254"), False),
                         (ipaddress.ip_address("2001:db8::99"), False)]:
        assert is_own_address(ip) is expected, ip
