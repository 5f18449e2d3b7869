"""The sending threads: whole bodies through a socket that fills, a stalled reader given up,
and a slow reader holding no thread (a socketpair; no network)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import pytest

from shipmate.cache import sendfile
from shipmate.cache.sendfile import ThreadedSender


def a_body(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    body = os.urandom(size)
    path = tmp_path / "body"
    path.write_bytes(body)
    return path, body


def read_all(sock: socket.socket, size: int, pause_every: int = 0) -> bytes:
    got = bytearray()
    sock.setblocking(True)
    while len(got) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
        if pause_every and len(got) % pause_every < 65536:
            threading.Event().wait(0.01)  # a reader slower than the sender
    return bytes(got)


async def send(sender: ThreadedSender, sock: socket.socket, path: Path, size: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        await sender._send(sock.fileno(), fd, size)
    finally:
        os.close(fd)


async def test_a_body_larger_than_the_socket_buffer_arrives_whole(tmp_path: Path) -> None:
    path, body = a_body(tmp_path, 8 * 1024 * 1024)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sender = ThreadedSender(threads=2)
    try:
        reader = asyncio.create_task(
            asyncio.to_thread(read_all, theirs, len(body), pause_every=1024 * 1024))
        await send(sender, ours, path, len(body))
        assert await reader == body
    finally:
        sender.close()
        ours.close()
        theirs.close()


async def test_two_slow_readers_share_one_thread(tmp_path: Path) -> None:
    """A full socket hands the wait back to the loop: one thread serves both bodies."""
    path, body = a_body(tmp_path, 4 * 1024 * 1024)
    pairs = [socket.socketpair() for _ in range(2)]
    sender = ThreadedSender(threads=1)
    try:
        readers = []
        for ours, theirs in pairs:
            ours.setblocking(False)
            readers.append(asyncio.create_task(
                asyncio.to_thread(read_all, theirs, len(body), pause_every=512 * 1024)))
        await asyncio.gather(*(send(sender, ours, path, len(body)) for ours, _ in pairs))
        assert [await r for r in readers] == [body, body]
    finally:
        sender.close()
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


async def test_a_reader_that_stops_is_given_up(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "STALL_TIMEOUT", 0.3)
    path, body = a_body(tmp_path, 8 * 1024 * 1024)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sender = ThreadedSender(threads=1)
    try:
        with pytest.raises(TimeoutError):
            await send(sender, ours, path, len(body))
    finally:
        sender.close()
        ours.close()
        theirs.close()


async def test_a_closed_connection_raises_and_a_short_file_is_caught(tmp_path: Path) -> None:
    path, body = a_body(tmp_path, 1024 * 1024)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.close()
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(OSError):
        sendfile.send_while_ready(ours.fileno(), fd, 0, len(body))
    os.close(fd)
    ours.close()
    ours, theirs = socket.socketpair()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="ended 10 bytes early"):
            sendfile.send_while_ready(ours.fileno(), fd, len(body) - 5, 15)
    finally:
        os.close(fd)
        ours.close()
        theirs.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_cancelled_send_closes_its_descriptors_only_after_the_thread(
        tmp_path: Path) -> None:
    """The duplicates outlive a cancel until the send in flight ends, then go: none leak,
    and none is closed under a running sendfile (where a reused number could be written to)."""
    path, body = a_body(tmp_path, 8 * 1024 * 1024)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    started = threading.Event()
    release = threading.Event()
    real = sendfile.send_while_ready

    def held(sock_fd: int, file_fd: int, offset: int, count: int) -> int:
        started.set()
        release.wait(10)  # the send is in flight while the coroutine is cancelled
        os.fstat(sock_fd)  # still open: raises if it was closed under us
        os.fstat(file_fd)
        return real(sock_fd, file_fd, offset, count)

    sender = ThreadedSender(threads=1)
    before = open_fds()
    try:
        sendfile.send_while_ready = held  # type: ignore[assignment]
        task = asyncio.create_task(send(sender, ours, path, len(body)))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert open_fds() == before + 2  # the thread's two duplicates, still open
        release.set()
        for _ in range(100):
            if open_fds() == before:
                break
            await asyncio.sleep(0.02)
        assert open_fds() == before
    finally:
        sendfile.send_while_ready = real  # type: ignore[assignment]
        release.set()
        sender.close()
        ours.close()
        theirs.close()
