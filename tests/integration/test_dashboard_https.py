"""The dashboard over HTTPS through the real router: ``certs:add shipmate CRT KEY`` with a
self-signed certificate made by openssl, and nginx serves the dashboard at
``shipmate.GLOBALDOMAIN`` with it (curl trusts only that certificate), plain HTTP redirects
there, the login cookie is ``Secure``; ``certs:report shipmate`` describes it and
``certs:remove shipmate`` goes back to plain HTTP. No app is named ``shipmate``: the name is
refused to ``apps:create``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.https_helpers import DOMAIN, HttpsDaemon, until

pytestmark = pytest.mark.integration
NAME = f"shipmate.{DOMAIN}"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsDaemon]:
    d = HttpsDaemon(tmp_path_factory.mktemp("dash-https") / "state",
                    SHIPMATE_DASHBOARD_PORT=str(free_port()))
    d.up()
    try:
        yield d
    finally:
        d.down()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    crt, key = folder / "server.crt", folder / "server.key"
    res = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={NAME}", "-addext", f"subjectAltName=DNS:{NAME}",
         "-keyout", str(key), "-out", str(crt)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return crt, key


def test_certs_add_shipmate_serves_the_dashboard_over_https(daemon: HttpsDaemon,
                                                             tmp_path: Path) -> None:
    until(lambda: daemon.http("shipmate", "/login").startswith("200"),
          what="the dashboard over HTTP")
    crt, key = _self_signed(tmp_path)
    added = daemon.ok("certs:add", "shipmate", str(crt), str(key))
    assert NAME in added

    def login_page() -> subprocess.CompletedProcess[str] | None:
        res = daemon.https("shipmate", "--cacert", str(crt), "-D", "-", path="/login")
        return res if res.returncode == 0 and 'name="password"' in res.stdout else None

    page = until(login_page, what="the dashboard over HTTPS")
    cookies = [line.lower() for line in page.stdout.splitlines()
               if line.lower().startswith("set-cookie:")]
    assert cookies and all("secure" in c for c in cookies), cookies
    assert daemon.http("shipmate", "/login") == \
        f"301 https://{NAME}:{daemon.https_port}/login"
    assert daemon.ok("certs:report", "shipmate", "--ssl-hostnames").split() == [NAME]

    daemon.ok("certs:remove", "shipmate")
    until(lambda: daemon.http("shipmate", "/login").startswith("200"),
          what="plain HTTP again")


def test_no_app_can_take_the_dashboards_name(daemon: HttpsDaemon) -> None:
    res = daemon.cli("apps:create", "shipmate")
    assert res.returncode == 1 and "reserved for the Shipmate dashboard" in res.stderr
    missing = daemon.cli("certs:report", "nosuchapp")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
