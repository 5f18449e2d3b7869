"""The whole ACME cycle against a real ACME server: Debian's ``pebble`` (Let's Encrypt's test
CA) and ``pebble-challtestsrv`` (its DNS, answering 127.0.0.1 for every name).

enable -> the router answers HTTP-01 from the store -> pebble issues -> ``curl --cacert
PEBBLE_ROOT`` verifies the chain and gets the app -> a forced renewal under load replaces the
certificate with no failed request -> revoke.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.router import tls
from tests.conftest import free_port
from tests.integration.https_helpers import HttpsDaemon, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble is not installed "
                       "(apt-get install pebble; scripts/bootstrap does)"),
]


class Pebble:
    """pebble and pebble-challtestsrv on free loopback ports, validating HTTP-01 against
    ``http_port`` (the router's)."""

    def __init__(self, workdir: Path, http_port: int) -> None:
        import datetime as dt

        workdir.mkdir(parents=True, exist_ok=True)
        # Debian's pebble ships no certificate for its own listener.
        crt, key = tls.generate_self_signed(["localhost"], now=dt.datetime.now(dt.UTC))
        self.ca = workdir / "pebble-listener.pem"
        self.ca.write_bytes(crt)
        (workdir / "pebble-listener.key").write_bytes(key)
        self.port, self.mgmt, dns = free_port(), free_port(), free_port()
        self.dns_mgmt = free_port()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt}",
            "certificate": str(self.ca), "privateKey": str(workdir / "pebble-listener.key"),
            "httpPort": http_port, "tlsPort": free_port(), "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}
        (workdir / "pebble.json").write_text(json.dumps(config))
        log = open(workdir / "pebble.log", "wb")  # noqa: SIM115 - kept for the processes
        self.dns = subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
             "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{self.dns_mgmt}"], stdout=log, stderr=log)
        self.server = subprocess.Popen(
            ["pebble", "-config", str(workdir / "pebble.json"), "-dnsserver",
             f"127.0.0.1:{dns}"], stdout=log, stderr=log,
            env={"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1",
                 "PEBBLE_WFE_NONCEREJECT": "0"})
        until(lambda: self._answers(), what="pebble's directory")
        self.root = workdir / "pebble-root.pem"
        self.root.write_text(self._get(f"https://localhost:{self.mgmt}/roots/0"))

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def _get(self, url: str) -> str:
        res = subprocess.run(["curl", "-sf", "--cacert", str(self.ca), url],
                             capture_output=True, text=True, timeout=10)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def _answers(self) -> bool:
        return subprocess.run(["curl", "-sf", "--cacert", str(self.ca), self.directory],
                              capture_output=True, timeout=10).returncode == 0

    def point(self, host: str, address: str) -> None:
        """Make challtestsrv answer ``address`` for ``host``."""
        body = json.dumps({"host": host, "addresses": [address]})
        res = subprocess.run(["curl", "-sf", "-d", body,
                              f"http://127.0.0.1:{self.dns_mgmt}/add-a"],
                             capture_output=True, text=True, timeout=10)
        assert res.returncode == 0, res.stderr

    def stop(self) -> None:
        for proc in (self.server, self.dns):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpsDaemon, Pebble]]:
    base = tmp_path_factory.mktemp("acme")
    # The daemon's ports are chosen first: pebble validates against its HTTP port.
    daemon = HttpsDaemon(base / "state")
    pebble = Pebble(base / "pebble", daemon.http_port)
    daemon.env["SHIPMATE_ACME_CA_BUNDLE"] = str(pebble.ca)
    try:
        daemon.up()
        try:
            daemon.ok("letsencrypt:set", "--global", "server", pebble.directory)
            daemon.ok("letsencrypt:set", "--global", "email", "ops@shipmate.test")
            yield daemon, pebble
        finally:
            daemon.down()
    finally:
        pebble.stop()


def _served_fingerprint(daemon: HttpsDaemon, app: str, root: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", daemon.https_port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=daemon.host(app)) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return tls.describe(tls.load_chain(ssl.DER_cert_to_PEM_cert(der).encode())[0]).fingerprint


class Load:
    """New verified TLS connections, one request each, until stopped: counts failures."""

    def __init__(self, daemon: HttpsDaemon, app: str, root: Path) -> None:
        self.daemon, self.app = daemon, app
        self.ctx = ssl.create_default_context(cafile=str(root))
        self.ok, self.failed, self.errors = 0, 0, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> bool:
        host = self.daemon.host(self.app)
        with socket.create_connection(("127.0.0.1", self.daemon.https_port), timeout=5) as raw, \
                self.ctx.wrap_socket(raw, server_hostname=host) as conn:
            conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and f"hello from {self.app}".encode() in data

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                good = self._one()
            except OSError as exc:
                good = False
                self.errors.append(repr(exc))
            self.ok, self.failed = self.ok + good, self.failed + (not good)
            time.sleep(0.01)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(10)


def test_issue_verify_renew_under_load_and_revoke(setup: tuple[HttpsDaemon, Pebble]) -> None:
    daemon, pebble = setup
    app, _ = daemon.app_with_page("le")
    out = daemon.ok("letsencrypt:enable", app, timeout=180)
    assert "Certificate installed" in out, out
    res = until(lambda: (r := daemon.https(app, "--cacert", str(pebble.root))).returncode == 0
                and r, what="a verified HTTPS answer")
    assert res.stdout == f"hello from {app}\n"
    report = json.loads(daemon.ok("certs:report", app, "--format", "json"))
    assert report["source"] == "letsencrypt" and report["hostnames"] == [daemon.host(app)]
    assert "Pebble" in str(report["issuer"])
    assert daemon.http(app).startswith("301 https://")
    listed = json.loads(daemon.ok("letsencrypt:list", "--format", "json"))
    assert [(r["app"], r["last_error"]) for r in listed] == [(app, "-")]
    assert listed[0]["expires"] != "-" and listed[0]["renewal"] != "now"
    # The account is made once and kept: a second issuance reuses it.
    first = _served_fingerprint(daemon, app, pebble.root)
    assert first == report["fingerprint"]

    with Load(daemon, app, pebble.root) as load:
        time.sleep(0.5)
        out = daemon.ok("letsencrypt:auto-renew", app, timeout=180)
        assert "Registering" not in out and "Certificate installed" in out, out
        until(lambda: _served_fingerprint(daemon, app, pebble.root) != first,
              what="the renewed certificate served")
        time.sleep(0.5)
    assert load.ok > 20 and load.failed == 0, (load.ok, load.failed, load.errors[:3])

    daemon.ok("letsencrypt:revoke", app, timeout=120)
    assert json.loads(daemon.ok("certs:report", app, "--format", "json"))["enabled"] is False
    assert json.loads(daemon.ok("letsencrypt:list", "--format", "json")) == []


def test_a_failed_validation_is_recorded_for_a_retry(setup: tuple[HttpsDaemon, Pebble]) -> None:
    daemon, pebble = setup
    app, _ = daemon.app_with_page("le-bad")
    # Its DNS points elsewhere (TEST-NET-1: nothing answers), so the CA cannot validate.
    pebble.point(daemon.host(app), "192.0.2.1")
    started = time.monotonic()
    res = daemon.cli("letsencrypt:enable", app, timeout=180)
    print(f"failed validation took {time.monotonic() - started:.1f}s")
    assert res.returncode == 1, res.stdout + res.stderr
    listed = {r["app"]: r for r in json.loads(daemon.ok("letsencrypt:list", "--format",
                                                         "json"))}
    assert listed[app]["failures"] == 1 and listed[app]["last_error"] != "-"
    assert listed[app]["renewal"] != "now"  # backoff before the next try
    daemon.ok("letsencrypt:disable", app)
