"""HTTPS end to end: the real CLI and SSH, a real daemon, its real nginx on free ports, curl.

Acceptance (issue 18): ``certs:generate`` on an app, then ``curl -k https://APP.DOMAIN/``
(resolved to this machine) returns the page and plain HTTP answers 301 to the HTTPS URL;
``certs:add`` refuses a mismatched key, an expired certificate and garbage, storing nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.router import tls
from tests.integration.https_helpers import HttpsDaemon, until
from tests.integration.paas_helpers import make_key

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsDaemon]:
    d = HttpsDaemon(tmp_path_factory.mktemp("https") / "state")
    d.up()
    try:
        yield d
    finally:
        d.down()


def _pair(path: Path, *domains: str, now: dt.datetime = NOW, days: int = 30
          ) -> tuple[Path, Path]:
    crt, key = tls.generate_self_signed(list(domains), now=now, days=days)
    (path / "server.crt").write_bytes(crt)
    (path / "server.key").write_bytes(key)
    return path / "server.crt", path / "server.key"


def _report(daemon: HttpsDaemon, app: str) -> dict[str, object]:
    return json.loads(daemon.ok("certs:report", app, "--format", "json"))


def test_generate_serves_https_and_plain_http_redirects(daemon: HttpsDaemon) -> None:
    app, _ = daemon.app_with_page()
    assert daemon.https(app, "-k").returncode != 0  # no certificate yet: no TLS for it
    assert daemon.ok("urls", app).split() == [f"http://{daemon.host(app)}:{daemon.http_port}"]
    daemon.ok("certs:generate", app)
    res = until(lambda: (r := daemon.https(app, "-k")).returncode == 0 and r, what="HTTPS")
    assert res.stdout == f"hello from {app}\n"
    # urls (and the deploy output) name the HTTPS URL now, as Dokku's do.
    assert daemon.ok("urls", app).split() == [f"https://{daemon.host(app)}:{daemon.https_port}"]
    assert daemon.http(app, "/a/b?c=1") == \
        f"301 https://{daemon.host(app)}:{daemon.https_port}/a/b?c=1"
    # ACME's path stays plain HTTP (it reaches the app, which has no such page here).
    assert daemon.http(app, "/.well-known/acme-challenge/x").startswith("200")
    # HTTP/2 and TLS 1.2+ only.
    assert daemon.https(app, "-k", "-o", "/dev/null", "-w", "%{http_version}").stdout == "2"
    assert daemon.https(app, "-k", "--tls-max", "1.1").returncode != 0
    # Unverified without -k: it is self-signed, and the report says so.
    assert daemon.https(app).returncode != 0
    report = _report(daemon, app)
    assert report["enabled"] is True and report["verified"] == "self signed"
    assert report["hostnames"] == [daemon.host(app)]
    assert daemon.ok("certs:report", app, "--ssl-verified").strip() == "self signed"
    # The key reaches nginx as a 0600 file, and is shown only when asked for.
    files = list((daemon.state_dir / "nginx" / "conf" / "tls").glob(f"{app}-*.pem"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    key = daemon.ok("certs:show", app, "key")
    assert "PRIVATE KEY" in key
    for shown in (daemon.ok("certs:report", app), json.dumps(report),
                  daemon.ok("config:show", app), daemon.ok("certs:show", app, "crt")):
        assert "PRIVATE KEY" not in shown


def test_hsts_and_removal(daemon: HttpsDaemon) -> None:
    app, _ = daemon.app_with_page()
    daemon.ok("certs:generate", app)
    until(lambda: daemon.https(app, "-k").returncode == 0, what="HTTPS")
    daemon.ok("certs:set", app, "hsts", "true")
    until(lambda: "strict-transport-security: max-age=15724800" in
          daemon.https(app, "-k", "-D", "-").stdout.lower(), what="HSTS")
    daemon.ok("certs:remove", app)
    until(lambda: daemon.http(app).startswith("200"), what="plain HTTP again")
    assert not list((daemon.state_dir / "nginx" / "conf" / "tls").glob(f"{app}-*.pem"))


@pytest.mark.parametrize("case, message", [
    ("mismatched key", "the private key does not match the certificate"),
    ("expired", "the certificate expired on"),
    ("garbage", "the certificate is not a PEM certificate"),
    ("other domain", "none of the app's domains"),
])
def test_add_refuses_bad_pairs_and_stores_nothing(daemon: HttpsDaemon, tmp_path: Path,
                                                  case: str, message: str) -> None:
    app, _ = daemon.app_with_page()
    crt, key = _pair(tmp_path, daemon.host(app))
    if case == "mismatched key":
        other = tmp_path / "other"
        other.mkdir()
        _, key = _pair(other, daemon.host(app))
    elif case == "expired":
        crt, key = _pair(tmp_path, daemon.host(app), now=NOW - dt.timedelta(days=10), days=2)
    elif case == "garbage":
        crt.write_bytes(b"not a certificate\n")
    else:
        crt, key = _pair(tmp_path, "someone-else.example.com")
    res = daemon.cli("certs:add", app, str(crt), str(key))
    assert res.returncode == 1 and res.stderr.startswith(" !     "), res.stderr
    assert message in res.stderr
    assert "PRIVATE KEY" not in res.stderr + res.stdout
    assert _report(daemon, app)["enabled"] is False
    assert daemon.http(app).startswith("200")


def test_add_by_files_and_over_ssh_by_tar(daemon: HttpsDaemon, tmp_path: Path) -> None:
    app, _ = daemon.app_with_page()
    crt, key = _pair(tmp_path, daemon.host(app))
    daemon.ok("certs:add", app, str(crt), str(key))
    assert _report(daemon, app)["source"] == "manual"
    until(lambda: daemon.https(app, "-k").stdout == f"hello from {app}\n", what="HTTPS")

    ssh_key = make_key(tmp_path)
    daemon.ok("ssh-keys:add", "tester", f"{ssh_key}.pub")
    ssh = ["ssh", "-i", str(ssh_key), "-o", "IdentitiesOnly=yes", "-o",
           "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
           "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", str(daemon.ssh_port),
           "shipmate@127.0.0.1"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    crt2, key2 = _pair(fresh, daemon.host(app))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(crt2, "server.crt")
        tar.add(key2, "server.key")
    res = until(lambda: (r := subprocess.run([*ssh, "certs:add", app], input=buf.getvalue(),
                                             capture_output=True, timeout=60)).returncode == 0
                and r, timeout=30, what="certs:add over SSH")
    assert b"Added a certificate" in res.stdout
    assert _report(daemon, app)["fingerprint"] == tls.describe(
        tls.load_chain(crt2.read_bytes())[0]).fingerprint
    # Over SSH no server path is read.
    refused = subprocess.run([*ssh, "certs:add", app, "/etc/ssl/x.crt", "/etc/ssl/x.key"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "standard input" in refused.stderr
