#!/usr/bin/env python3
"""HTTPS through Shipmate's router beside nginx configured by hand, in front of one container.

    .venv/bin/python bench/tls.py [--rounds 6] [--clients 32] [--per-connection 300]
                                [--handshakes 400] [--resumed 1000]

Starts a daemon with the router on free loopback ports (HTTP and HTTPS), one
``shipmate/python:3.11`` container serving a small page (a few lines of asyncio: keep-alive
HTTP/1.1), an app whose endpoint is that container, and ``certs:generate`` for it (ECDSA
P-256, as Shipmate makes them). Beside it, a second nginx master runs from a hand-written
nginx.conf in a temp prefix, with the same certificate and key, the same TLS settings
(Mozilla's "intermediate": protocols, ciphers, curves, a 10 MB shared session cache, 1 day,
no tickets, as Shipmate renders them; the bench checks that Shipmate's rendered lines are
these), ``http2``, the same worker count, an access log, and a keep-alive upstream to the
same container. Both are measured by Debian's ``h2load`` (nghttp2-client, installed when
missing), the URL carrying the app's domain so that TLS SNI picks the app's server block:

- requests per second over HTTP/1.1 keep-alive connections (``--h1 -c CLIENTS``, 300
  requests per connection: nginx closes one after 1000, in both configs);
- requests per second over HTTP/2 (``-c CLIENTS -m 10``): ten streams in flight on each
  connection;
- new TLS handshakes per second: ``--h1 -n N -c N``, N clients that each open one connection
  and send one request, so every handshake is a full one (h2load resumes a session only on
  a client's next connection);
- resumed handshakes per second: ``--h1`` with ``Connection: close``, so every request opens
  a new connection, on which h2load resumes its session from the server's session cache.

In each round the two servers run back to back, three times each, in an order that changes
from round to round (bench/judge.py); every goal is judged on the median of the rounds'
ratios (Shipmate/hand), with their range: at least 0.9x. Beside each rate the table shows
the nginx workers' CPU time per 1000 requests. The load average is printed before and
after. Loopback and the bench's own container only; under three minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import judge  # bench/ is not a package
from tests.conftest import free_port
from tests.integration.https_helpers import HttpsDaemon, until

IMAGE = "shipmate/python:3.11"
LABEL = "shipmate.bench=tls"
BODY = "<h1>hello over TLS</h1>"
BACKEND = f"""
import asyncio, sys
BODY = b"{BODY}\\n"
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: text/html\\r\\nContent-Length: %d\\r\\n" % len(BODY)
class Page(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while b"\\r\\n\\r\\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\\r\\n\\r\\n")
            close = head.split(b"\\r\\n")[0].endswith(b"1.0") or b"onnection: close" in head
            self.transport.write(HEAD + (b"Connection: close\\r\\n" if close else b"")
                                 + b"\\r\\n" + BODY)
            if close:
                self.transport.close()
                return
async def main():
    server = await asyncio.get_running_loop().create_server(Page, "127.0.0.1", int(sys.argv[1]),
                                                                 backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""
# Mozilla's "intermediate" profile, as an admin copies it into nginx.conf.
TLS_LINES = """\
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_session_cache shared:MozSSL:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;
"""
HAND_CONF = """\
worker_processes auto;
{user}pid nginx.pid;
error_log logs/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;
    uwsgi_temp_path tmp; scgi_temp_path tmp;
    access_log logs/access.log;
{tls}
    upstream app {{
        server {backend};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name {host};
        ssl_certificate server.crt;
        ssl_certificate_key server.key;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""
MEASURES = {  # name -> what the figure is
    "keep-alive": "HTTPS requests/s, HTTP/1.1 keep-alive",
    "h2": "HTTPS requests/s, HTTP/2",
    "handshakes": "new TLS handshakes/s (full)",
    "resumed": "resumed TLS handshakes/s",
}
RUNS = 3  # h2load runs per measure, server and round, alternating the servers: a slow
# moment of this shared machine then weighs on both servers' figures of a round


class Target:
    """One HTTPS server in front of the app: its name, port and nginx master's pid."""

    def __init__(self, name: str, port: int, host: str, pidfile: Path) -> None:
        self.name, self.port, self.host = name, port, host
        self.master = int(pidfile.read_text())

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def worker_cpu(self) -> float:
        """CPU seconds used so far by the master's workers."""
        children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        ticks = 0
        for pid in children:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


def start_backend() -> tuple[str, str]:
    """The app's one container: (its id, its address as HOST:PORT).

    It shares the host's network and listens on loopback: both routers keep 16 idle
    connections to it per worker and open more under a burst, and every connection they
    close waits in TIME_WAIT; on loopback the kernel may reuse those ports
    (``net.ipv4.tcp_tw_reuse=2``), towards a bridge address it may not, and after some
    30 000 of them nginx waits for a free port."""
    name = f"shipmate-bench-tls-{uuid.uuid4().hex[:6]}"
    port = free_port()
    res = subprocess.run(["docker", "run", "-d", "--network", "host", "--label", LABEL,
                          "--name", name, IMAGE, "python3", "-c", BACKEND, str(port)],
                         capture_output=True, text=True, timeout=120)
    if res.returncode:
        raise SystemExit(f"cannot start the {IMAGE} container: {res.stderr.strip()}")
    return res.stdout.strip(), f"127.0.0.1:{port}"


def shipmate_app(daemon: HttpsDaemon, backend: str) -> str:
    """An app routed to ``backend`` (as the agent would publish it), with a generated
    certificate; returns its name once its page answers over HTTPS."""
    app = f"tls-{uuid.uuid4().hex[:6]}"
    ip, port = backend.split(":")
    daemon.ok("apps:create", app)
    daemon.kv_put(f"/shipmate/routes/domains/{app}", {"domains": []})
    daemon.kv_put(f"/shipmate/routes/active/{app}", {"release": "*"})
    daemon.kv_put(f"/shipmate/endpoints/{app}/web/1", {"host": ip, "port": int(port),
                                                       "release": "v1", "healthy": True})
    daemon.ok("certs:generate", app)
    until(lambda: BODY in daemon.https(app, "-k").stdout, timeout=60, what="the app over HTTPS")
    return app


def start_hand_nginx(prefix: Path, crt: str, key: str, backend: str, host: str,
                     user: str) -> int:
    """nginx from a hand-written config in ``prefix``, its workers running as ``user``
    (as Shipmate's do); returns its HTTPS port."""
    (prefix / "logs").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    prefix.chmod(0o755)  # workers that are not root traverse it to reach tmp/
    (prefix / "server.crt").write_text(crt)
    (prefix / "server.key").touch(mode=0o600)
    (prefix / "server.key").write_text(key)
    port = free_port()
    (prefix / "nginx.conf").write_text(HAND_CONF.format(
        user=f"user {user};\n" if user else "", tls=TLS_LINES.rstrip("\n"), backend=backend,
        port=port, host=host))
    res = subprocess.run(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                          "-e", "logs/error.log"], capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise SystemExit(f"hand nginx did not start: {res.stderr}")
    return port


def stop_hand_nginx(prefix: Path) -> None:
    """Stop the hand-configured nginx (by the pid it wrote)."""
    pid = prefix / "nginx.pid"
    if pid.exists():
        subprocess.run(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                        "-e", "logs/error.log", "-s", "stop"], capture_output=True, timeout=30)


def check_same_tls(rendered: str) -> None:
    """Shipmate's rendered TLS settings are the hand config's (the session cache's name
    aside): otherwise the comparison would not be like for like."""
    def settings(text: str) -> list[str]:
        found = re.findall(r"^\s*(ssl_(?:protocols|ciphers|prefer_server_ciphers|ecdh_curve|"
                           r"session_cache|session_timeout|session_tickets) [^;]*);", text, re.M)
        return sorted(re.sub(r"shared:\w+:", "shared:NAME:", s) for s in found)
    ours, hand = settings(rendered), settings(TLS_LINES)
    if ours != hand:
        raise SystemExit(f"Shipmate renders other TLS settings than the hand config:\n"
                         f"  shipmate: {ours}\n  hand: {hand}")


def h2load(target: Target, kind: str, args: argparse.Namespace) -> tuple[float, int]:
    """One h2load run of measure ``kind``: (requests or new connections per second, requests).
    The URL names the app, so h2load sends it as TLS SNI; it connects to 127.0.0.1."""
    # Counted runs, not timed ones: nginx closes a connection after 1000 requests (its
    # keepalive_requests, the same in both configs), and in a timed run h2load then waits
    # for the end without a new connection (HTTP/2) or hangs (HTTP/1.1).
    base = ["h2load", f"--connect-to=127.0.0.1:{target.port}", "-t", "1"]
    clients = str(args.clients)
    requests = str(args.clients * args.per_connection)
    if kind == "keep-alive":
        argv = [*base, "--h1", "-c", clients, "-n", requests]
    elif kind == "h2":
        argv = [*base, "-c", clients, "-m", "10", "-n", requests]
    elif kind == "resumed":
        argv = [*base, "--h1", "-c", clients, "-n", str(args.resumed),
                "-H", "Connection: close"]
    else:  # One burst: more connections at once would overflow nginx's listen backlog
        # (511), and a SYN sent again a second later would count as the server's time.
        n = str(args.handshakes)
        argv = [*base, "--h1", "-n", n, "-c", n]
    res = subprocess.run([*argv, target.url], capture_output=True, text=True, timeout=120)
    out = res.stdout
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not (done and rate and codes) or int(done[4]) == 0 or done[4] != codes[1] \
            or done[3] != done[4]:
        raise SystemExit(f"h2load against {target.name} failed ({' '.join(argv)}):\n"
                         f"{out[-1500:]}{res.stderr[-500:]}")
    return float(rate[1]), int(done[4])


def negotiated(target: Target) -> str:
    """The TLS version, cipher suite and key exchange h2load gets from ``target``."""
    out = subprocess.run(["h2load", f"--connect-to=127.0.0.1:{target.port}", "--h1",
                          target.url], capture_output=True, text=True, timeout=60).stdout
    found = re.findall(r"^(?:TLS Protocol|Cipher|Server Temp Key): (.+)$", out, re.M)
    return " ".join(found) or "?"


Runs = dict[str, dict[str, list[float]]]  # measure -> server -> one figure per round


def measure(targets: list[Target], args: argparse.Namespace) -> tuple[Runs, Runs]:
    """Every measure on both servers, round by round, in alternating orders: the rates, and
    the workers' CPU milliseconds per 1000 requests."""
    rates: Runs = {m: {t.name: [] for t in targets} for m in MEASURES}
    cpu: Runs = {m: {t.name: [] for t in targets} for m in MEASURES}
    warm = argparse.Namespace(**{**vars(args), "per_connection": 100, "resumed": 300})
    for kind in MEASURES:  # warm both up: workers, upstream connections, page cache
        for target in targets:
            h2load(target, kind, warm)
    for r, order in enumerate(judge.round_orders(len(targets), args.rounds)):
        for kind in MEASURES:
            got: dict[str, list[tuple[float, int, float]]] = {t.name: [] for t in targets}
            for _ in range(RUNS):
                for i in order:
                    before = targets[i].worker_cpu()
                    rate, requests = h2load(targets[i], kind, args)
                    got[targets[i].name].append((rate, requests,
                                                 targets[i].worker_cpu() - before))
            for name, runs in got.items():
                rates[kind][name].append(statistics.mean(x[0] for x in runs))
                cpu[kind][name].append(1e6 * sum(x[2] for x in runs) / sum(x[1] for x in runs))
        line = ", ".join(f"{m} " + "/".join(f"{rates[m][t.name][-1]:.0f}" for t in targets)
                         for m in MEASURES)
        print(f"round {r + 1} ({'/'.join(t.name for t in targets)}): {line}", flush=True)
    return rates, cpu


def report(rates: Runs, cpu: Runs, targets: list[Target]) -> list[list[str]]:
    """The figures table and the goals; returns the goal rows."""
    rows = []
    for m, label in MEASURES.items():
        for t in targets:
            rows.append([label, t.name, f"{statistics.median(rates[m][t.name]):.0f}",
                         judge.spread(rates[m][t.name], 0),
                         f"{statistics.median(cpu[m][t.name]):.0f}"])
    print()
    table(["measure", "server", "median", "(rounds)", "worker CPU ms/1000"], rows)
    ours, hand = targets[0].name, targets[1].name
    goals = [judge.paired(f"{label}: Shipmate >= 0.9x nginx by hand", rates[m][ours],
                          rates[m][hand], 0.9) for m, label in MEASURES.items()]
    table(["", "goal", "measured", "(rounds)"], goals)
    return goals


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print()


def ensure_h2load() -> None:
    """Debian's nghttp2-client, when missing (as the other benches install their tools)."""
    if shutil.which("h2load") is None:
        print("installing nghttp2-client (h2load)")
        subprocess.run(["apt-get", "install", "-y", "nghttp2-client"], check=True,
                       stdout=subprocess.DEVNULL)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6, help="rounds (even: each order as often)")
    ap.add_argument("--per-connection", type=int, default=300,
                    help="requests per keep-alive connection and run (under nginx's 1000)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent connections")
    ap.add_argument("--handshakes", type=int, default=400,
                    help="connections at once (one request each) in a full-handshake burst")
    ap.add_argument("--resumed", type=int, default=1000,
                    help="requests, each on a new connection, per resumed-handshake run")
    args = ap.parse_args()
    ensure_h2load()
    base = Path(tempfile.mkdtemp(prefix="shipmate-bench-tls-"))
    daemon = HttpsDaemon(base / "state")
    cid, goals = "", []
    started = time.monotonic()
    print(f"before: {load()}", flush=True)
    try:
        daemon.up()
        cid, backend = start_backend()
        app = shipmate_app(daemon, backend)
        host = daemon.host(app)
        rendered = (daemon.state_dir / "nginx" / "conf" / "nginx.conf").read_text()
        check_same_tls(rendered)
        user = re.search(r"^user ([^;]+);", rendered, re.M)
        crt, key = daemon.ok("certs:show", app, "crt"), daemon.ok("certs:show", app, "key")
        hand_port = start_hand_nginx(base / "hand", crt, key, backend, host,
                                     user[1] if user else "")
        targets = [Target("shipmate", daemon.https_port, host,
                          daemon.state_dir / "nginx" / "run" / "nginx.pid"),
                   Target("nginx", hand_port, host, base / "hand" / "nginx.pid")]
        print(f"app {host} on {IMAGE} at {backend}; Shipmate's router on :{daemon.https_port}, "
              f"nginx by hand on :{hand_port}", flush=True)
        for target in targets:
            print(f"{target.name}: {negotiated(target)}", flush=True)
        goals = report(*measure(targets, args), targets)
    finally:
        stop_hand_nginx(base / "hand")
        daemon.down()
        if cid:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
    print(f"after: {load()}; {time.monotonic() - started:.0f} s in all")
    return 0 if goals and all(g[0] == "PASS" for g in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
