"""Zero-downtime redeploys: requests through the router while the app is redeployed.

Starts a daemon (router, SSH, package cache) on free loopback ports, pushes
examples/node-js-app, then sends RATE requests per second to ``Host: APP.shipmate.test`` on
127.0.0.1 while it redeploys the app three times in a row (by default two code pushes and one
``ps:restart``), and for a few seconds after, so that the old instances are retired under load.
Prints the requests sent, the rate reached and the failed requests (any answer but 200, or
no answer); it exits 1 if a request failed or the rate fell under 100/s.

    .venv/bin/python bench/zero_downtime.py [--rate 200] [--keepalive] [--redeploys 3] [--https]

Without ``--keepalive`` every request opens a new connection (like curl); with it the client
reuses connections, which also exercises nginx closing idle connections on reload: a request
sent on a connection the server closed at that instant is sent again once on a new
connection, as HTTP allows for GET (and browsers and curl do); those are counted apart.

With ``--https`` the router also listens for HTTPS (on a free port), the app gets a
certificate (``certs:generate``) before the load starts, and every request goes to
``https://APP.shipmate.test:PORT/`` on 127.0.0.1 with the app's domain as TLS SNI, verified
against the generated certificate as the only CA (without ``--keepalive``, one TLS handshake
per request).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import free_port
from tests.integration.paas_helpers import (
    DOMAIN,
    PaasDaemon,
    commit,
    unique,
    work_tree,
)

TAIL_SECONDS = 6.0  # keep the load on after the last redeploy: old instances retire then
MAX_SECONDS = 600.0


@dataclass
class Load:
    """What the client saw."""

    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # keep-alive only, see _one
    started: float = 0.0
    stopped: float = 0.0

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        return self.sent / max(self.stopped - self.started, 1e-9)


@dataclass(frozen=True)
class Target:
    """Where the requests go: the URL on 127.0.0.1, the app's host name (the Host header,
    and the TLS server name over HTTPS) and, over HTTPS, the context that verifies it."""

    url: str
    host: str
    tls: ssl.SSLContext | None = None


async def _one(session: aiohttp.ClientSession, target: Target, load: Load,
               keepalive: bool) -> None:
    at = time.monotonic() - load.started
    for attempt in (1, 2):
        try:
            async with session.get(target.url, headers={"Host": target.host},
                                   ssl=target.tls or True,
                                   server_hostname=target.host if target.tls else None) as resp:
                body = await resp.read()
            if resp.status == 200 and b"<h1>" in body:
                load.ok += 1
            else:
                load.failures.append(f"t={at:.2f}s HTTP {resp.status} {body[:80]!r}")
            return
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # An idle keep-alive connection that the server closed (an nginx reload retires
            # its old workers) may take a request that was already on its way. HTTP lets a
            # client send an idempotent request again on a new connection (RFC 9110 9.2.2),
            # as browsers and curl do: once, counted apart, never for an answer received.
            if keepalive and attempt == 1:
                load.retried.append(f"t={at:.2f}s {type(exc).__name__}: {exc}")
                continue
            load.failures.append(f"t={at:.2f}s {type(exc).__name__}: {exc}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            load.failures.append(f"t={at:.2f}s {type(exc).__name__}: {exc}")
        return


async def generate(target: Target, rate: float, stop: asyncio.Event, load: Load,
                   keepalive: bool) -> None:
    """Start one request every 1/rate seconds (at most 200 in flight) until ``stop``."""
    connector = aiohttp.TCPConnector(force_close=not keepalive, limit=200)
    timeout = aiohttp.ClientTimeout(total=20)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load.started = time.monotonic()
        deadline = load.started + MAX_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            due = load.started + load.sent / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= 200:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            load.sent += 1
            task = asyncio.create_task(_one(session, target, load, keepalive))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        load.stopped = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=30)


def redeploy(daemon: PaasDaemon, tree: Path, app: str, n: int) -> tuple[str, float]:
    """One redeploy: a code push, or (every third) a ``ps:restart``."""
    started = time.monotonic()
    if n % 3 == 2:
        what = "ps:restart"
        res = daemon.cli("ps:restart", app, timeout=300)
    else:
        what = "git push"
        text = (tree / "server.js").read_text()
        commit(tree, f"redeploy {n}", {"server.js": text + f"// redeploy {n}\n"})
        res = daemon.push(tree, app)
    if res.returncode != 0:
        log = (daemon.state_dir / "daemon.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"{what} failed:\n{res.stdout}\n{res.stderr[-3000:]}\n"
                         f"daemon log:\n{log}")
    return what, time.monotonic() - started


async def scenario(daemon: PaasDaemon, tree: Path, target: Target, args: argparse.Namespace
                   ) -> Load:
    """Load on, redeploy ``args.redeploys`` times, load on a little longer, load off."""
    load, stop = Load(), asyncio.Event()
    app = target.host.removesuffix(f".{DOMAIN}")
    gen = asyncio.create_task(generate(target, args.rate, stop, load, args.keepalive))
    await asyncio.sleep(2)
    for n in range(args.redeploys):
        what, seconds = await asyncio.to_thread(redeploy, daemon, tree, app, n)
        print(f"redeploy {n + 1}: {what} took {seconds:.1f} s; "
              f"{load.sent} sent, {len(load.failures)} failed so far", flush=True)
    await asyncio.sleep(TAIL_SECONDS)
    stop.set()
    await gen
    return load


def https_target(daemon: PaasDaemon, app: str, port: int) -> Target:
    """``certs:generate`` the app, wait until its page answers over HTTPS, verified with
    the generated certificate as the only trusted CA; the HTTPS target."""
    daemon.ok("certs:generate", app)
    context = ssl.create_default_context(cadata=daemon.ok("certs:show", app, "crt"))
    target = Target(f"https://127.0.0.1:{port}/", f"{app}.{DOMAIN}", context)
    deadline = time.monotonic() + 60

    async def ok() -> bool:
        load = Load(started=time.monotonic())
        async with aiohttp.ClientSession() as session:
            await _one(session, target, load, keepalive=False)
        return load.ok == 1

    while not asyncio.run(ok()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{app} never answered over HTTPS on port {port}")
        time.sleep(0.3)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--redeploys", type=int, default=3)
    parser.add_argument("--keepalive", action="store_true", help="reuse connections")
    parser.add_argument("--https", action="store_true",
                        help="certs:generate the app and send the requests over HTTPS")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="shipmate-bench-zd-"))
    (base / "state").mkdir()
    daemon = PaasDaemon(base / "state")
    https_port = free_port()
    daemon.env["SHIPMATE_HTTPS_PORT"] = str(https_port)  # never 443 here
    app = unique("zd")
    try:
        daemon.up()
        tree = work_tree(base / "tree")
        first = daemon.push(tree, app)
        if first.returncode != 0:
            raise SystemExit(f"first push failed:\n{first.stderr}")
        daemon.wait_page(app, "<h1>")
        target = (https_target(daemon, app, https_port) if args.https else
                  Target(f"http://127.0.0.1:{daemon.http_port}/", f"{app}.{DOMAIN}"))
        load = asyncio.run(scenario(daemon, tree, target, args))
        if load.failures:
            errors = daemon.state_dir / "nginx" / "logs" / "error.log"
            lines = errors.read_text(errors="replace").splitlines() if errors.exists() else []
            print("nginx error.log (last 15 lines):", *lines[-15:], sep="\n  ")
    finally:
        daemon.down()
        shutil.rmtree(base, ignore_errors=True)
    for failure in load.failures[:20]:
        print("  failed:", failure)
    print(f"requests sent: {load.sent}")
    print(f"duration: {load.stopped - load.started:.1f} s")
    print(f"rate: {load.rate:.0f} requests/s over {'HTTPS' if args.https else 'HTTP'}"
          f" ({'keep-alive' if args.keepalive else 'a new connection per request'})")
    if args.keepalive:
        print(f"retried on a new connection after a keep-alive close: {len(load.retried)}")
    print(f"failed requests: {len(load.failures)}")
    return 0 if not load.failures and load.rate >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
