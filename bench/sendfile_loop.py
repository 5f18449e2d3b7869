#!/usr/bin/env python3
"""The kernel's part of serving a cached file on loopback, at several send buffers: a bare loop
of ``sendfile(2)`` calls, with no HTTP and no Python in the data path.

    python3 bench/sendfile_loop.py [--connections 1,10,50] [--sizes 0,524288]
                                   [--rounds 4] [--duration 4] [--same-file]

A server process accepts the connections and, in a thread each, sends a 24 MB file over and
over with blocking ``sendfile`` calls, its ``SO_SNDBUF`` set to the size under test (0: the
kernel's autotuning; Linux keeps twice the size asked for). Two client processes read 1 MiB
per call, as bench/bulkget.py does. Connection i sends file i mod 10, so clients do not share
one file in the CPU's caches (``--same-file``: all send the same one). Printed: the median
MB/s of the rounds for each size and number of connections, and its ratio to the first
size's. It shows that the gain of a fixed send buffer on loopback (docs/cache.md, "Send
buffer") is the kernel's, not the cache's; it judges nothing and always exits 0.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import judge  # bench/ is not a package

FILE_SIZE = 24 * 2**20
FILES = 10
READ = 2**20


def send_forever(conn: socket.socket, path: Path) -> None:
    with open(path, "rb") as f:
        try:
            while True:
                offset = 0
                while offset < FILE_SIZE:
                    offset += os.sendfile(conn.fileno(), f.fileno(), offset, FILE_SIZE - offset)
        except OSError:  # the client is done
            pass


def serve(ports: mp.Queue[int], files: list[Path], connections: int, sndbuf: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    ports.put(listener.getsockname()[1])
    for i in range(connections):
        conn, _ = listener.accept()
        if sndbuf:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        threading.Thread(target=send_forever, args=(conn, files[i % len(files)]),
                         daemon=True).start()
    time.sleep(3600)  # until killed


def read_for(port: int, connections: int, seconds: float, totals: mp.Queue[int]) -> None:
    got = [0] * connections

    def read(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            buf = memoryview(bytearray(READ))
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                n = s.recv_into(buf)
                if not n:
                    break
                got[i] += n

    threads = [threading.Thread(target=read, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals.put(sum(got))


def measure(files: list[Path], connections: int, sndbuf: int, seconds: float) -> float:
    """MB/s over ``connections`` connections for ``seconds``."""
    ports: mp.Queue[int] = mp.Queue()
    server = mp.Process(target=serve, args=(ports, files, connections, sndbuf))
    server.start()
    try:
        port = ports.get(timeout=10)
        halves = [n for n in (connections // 2, connections - connections // 2) if n]
        totals: mp.Queue[int] = mp.Queue()
        started = time.monotonic()
        clients = [mp.Process(target=read_for, args=(port, n, seconds, totals)) for n in halves]
        for c in clients:
            c.start()
        received = sum(totals.get() for _ in clients)
        elapsed = time.monotonic() - started
        for c in clients:
            c.join()
    finally:
        server.kill()
        server.join()
    return received / elapsed / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", default="1,10,50", help="concurrent connections")
    ap.add_argument("--sizes", default="0,524288", help="SO_SNDBUF values, bytes (0: autotuning)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds (median)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--same-file", action="store_true", help="every connection sends one file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-sendfile-") as tmp:
        files = [Path(tmp) / f"file{i}" for i in range(1 if args.same_file else FILES)]
        for f in files:
            f.write_bytes(os.urandom(FILE_SIZE))  # now in the page cache, as a warm hit is
        print(f"{len(files)} file(s) of {FILE_SIZE >> 20} MB, {args.duration:g} s per run, "
              f"medians of {args.rounds}\n", flush=True)
        print(f"{'connections':>11}  {'sndbuf':>8}  {'MB/s':>6}  {'/ first':>7}")
        for connections in (int(n) for n in args.connections.split(",")):
            runs: dict[int, list[float]] = {s: [] for s in sizes}
            for order in judge.rotations(len(sizes), args.rounds):  # sizes take turns first
                for i in order:
                    runs[sizes[i]].append(measure(files, connections, sizes[i], args.duration))
            first = statistics.median(runs[sizes[0]])
            for size in sizes:
                mbs = statistics.median(runs[size])
                print(f"{connections:>11}  {size:>8}  {mbs:>6.0f}  {mbs / first:>6.2f}x",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
