#!/usr/bin/env python3
"""A load generator for large HTTP bodies, cheap enough per byte that the server is measured.

    .venv/bin/python bench/bulkget.py --clients 10 --duration 5 URL [URL ...]

wrk reads a response 8 kB at a time (its RECVBUF), so on loopback a 20 MB body costs it
2,500 ``read`` calls and wrk, not the server, sets the MB/s. Here each client is a thread
that keeps one HTTP/1.1 connection open, asks for the URLs in turn and reads each body with
``recv_into`` a 1 MiB buffer, checking its length; the threads are spread over two
processes (the GIL is released while a thread waits in ``recv_into``). Prints one JSON line:
``{"requests": N, "bytes": N, "seconds": S, "mb_per_s": X, "errors": N}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

BUFFER = 1 << 20
PROCESSES = 2


class Client:
    """One keep-alive connection asking for ``paths`` in turn on ``host:port``."""

    def __init__(self, host: str, port: int, paths: list[str]) -> None:
        self.addr = (host, port)
        self.requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
                         for p in paths]
        self.buf = bytearray(BUFFER)
        self.view = memoryview(self.buf)
        self.sock: socket.socket | None = None
        self.pending = b""

    def get(self, i: int) -> int:
        """Fetch request ``i``'s body; its length (ConnectionError/ValueError on a bad answer)."""
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=30)
            self.pending = b""
        self.sock.sendall(self.requests[i % len(self.requests)])
        head, body_start = self._head()
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise ValueError(f"status {status.decode()}")
        length = _content_length(head)
        got = len(body_start)
        if got > length:
            raise ValueError("more body than Content-Length")
        while got < length:
            n = self.sock.recv_into(self.view, min(BUFFER, length - got))
            if n == 0:
                raise ConnectionError("server closed mid-body")
            got += n
        if _closes(head):
            self.close()  # the server ends the connection after this response
        return length

    def _head(self) -> tuple[bytes, bytes]:
        data = self.pending
        while b"\r\n\r\n" not in data:
            assert self.sock is not None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed before the headers")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = _content_length(head)
        self.pending = rest[length:]
        return head, rest[:length]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _closes(head: bytes) -> bool:
    lines = head.lower().split(b"\r\n")
    return lines[0].startswith(b"http/1.0") or any(
        line.startswith(b"connection:") and b"close" in line for line in lines[1:])


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("no Content-Length")


def _worker(host: str, port: int, paths: list[str], threads: int, start: float, stop: float,
            out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    totals = {"requests": 0, "bytes": 0, "errors": 0, "end": start}
    lock = threading.Lock()

    def run(offset: int) -> None:
        client = Client(host, port, paths)
        requests = sent = errors = 0
        i = offset
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < stop:
            try:
                sent += client.get(i)
                requests += 1
            except (OSError, ValueError):
                errors += 1
                client.close()
            i += 1
        client.close()
        with lock:
            totals["requests"] += requests
            totals["bytes"] += sent
            totals["errors"] += errors
            totals["end"] = max(totals["end"], time.time())

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(totals)


def load(urls: list[str], clients: int, duration: float) -> dict[str, float]:
    """Run ``clients`` connections over ``urls`` for ``duration`` seconds; the totals. A body
    still coming at the end is read to its end and the clock stops when the last one ends."""
    parts = [urlsplit(u) for u in urls]
    host, port = parts[0].hostname or "127.0.0.1", parts[0].port or 80
    paths = [p.path for p in parts]
    start = time.time() + 0.3
    stop = start + duration
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    split = [clients // PROCESSES + (1 if n < clients % PROCESSES else 0)
             for n in range(PROCESSES)]
    procs = [multiprocessing.Process(target=_worker,
                                     args=(host, port, paths[n:] + paths[:n], k, start, stop,
                                           out))
             for n, k in enumerate(split) if k]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    total = {k: sum(r[k] for r in results) for k in ("requests", "bytes", "errors")}
    seconds = max(r["end"] for r in results) - start
    return {**total, "seconds": round(seconds, 3), "mb_per_s": total["bytes"] / seconds / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("urls", nargs="+")
    args = ap.parse_args()
    print(json.dumps(load(args.urls, args.clients, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
