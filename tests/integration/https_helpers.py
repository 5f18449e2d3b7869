"""A real daemon with the router (HTTP and HTTPS on free ports) and SSH, and an app whose one
instance is a loopback HTTP server, for HTTPS tests and benchmarks.

The instance is registered as the app's endpoint through the daemon's key/value API, as the
agent would for a container: the tests are about certificates and the router, not builds.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.conftest import free_port
from tests.integration.daemon_helpers import daemon_env, pids_of_daemon, wait_status

DOMAIN = "shipmate.test"


class Page(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering ``hello from NAME`` to every GET."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        text = f"hello from {name}\n".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class HttpsDaemon:
    """One daemon (router + SSH, no cache) in its own state dir, on free ports."""

    def __init__(self, state_dir: Path, **extra: str) -> None:
        self.state_dir = state_dir
        self.http_port, self.https_port = free_port(), free_port()
        self.ssh_port = free_port()
        self.env = daemon_env(state_dir, SHIPMATE_MACHINE_ID=f"https-{uuid.uuid4().hex[:6]}",
                              SHIPMATE_ROUTER="1", SHIPMATE_SSH="1",
                              SHIPMATE_HTTP_PORT=str(self.http_port),
                              SHIPMATE_HTTPS_PORT=str(self.https_port),
                              SHIPMATE_SSH_PORT=str(self.ssh_port), **extra)
        self.pages: list[Page] = []

    def up(self) -> None:
        res = self.cli("up")
        assert res.returncode == 0, res.stdout + res.stderr
        wait_status(self.env, timeout=60)
        self.ok("domains:set-global", DOMAIN)

    def down(self) -> None:
        self.cli("down", timeout=60)
        for page in self.pages:
            page.close()
        assert pids_of_daemon(self.state_dir) == []

    def cli(self, *args: str, timeout: float = 120,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "shipmate.cli.main", *args], env=self.env,
                             capture_output=True, timeout=timeout, input=input)
        return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(),
                                           res.stderr.decode())

    def ok(self, *args: str, timeout: float = 120) -> str:
        res = self.cli(*args, timeout=timeout)
        assert res.returncode == 0, f"shipmate {' '.join(args)}: {res.stdout}{res.stderr}"
        return res.stdout

    def kv_put(self, key: str, value: object) -> None:
        res = subprocess.run(
            ["curl", "-sf", "--unix-socket", str(self.state_dir / "shipmate.sock"), "-X", "PUT",
             "--data-binary", json.dumps(value), f"http://d/v1/kv{key}"],
            capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr

    def app_with_page(self, prefix: str = "web") -> tuple[str, Page]:
        """A new app answering on APP.shipmate.test through the router."""
        app = f"{prefix}-{uuid.uuid4().hex[:6]}"
        page = Page(app)
        self.pages.append(page)
        self.ok("apps:create", app)
        self.kv_put(f"/shipmate/routes/domains/{app}", {"domains": []})
        self.kv_put(f"/shipmate/routes/active/{app}", {"release": "*"})
        self.kv_put(f"/shipmate/endpoints/{app}/web/1", {"host": "127.0.0.1", "port": page.port,
                                                         "release": "v1", "healthy": True})
        until(lambda: self.http(app).startswith("200"), what=f"{app} over HTTP")
        return app, page

    def host(self, app: str) -> str:
        return f"{app}.{DOMAIN}"

    def http(self, app: str, path: str = "/") -> str:
        """``STATUS LOCATION`` of a plain HTTP GET through the router."""
        res = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             "-H", f"Host: {self.host(app)}", f"http://127.0.0.1:{self.http_port}{path}"],
            capture_output=True, text=True, timeout=30)
        return res.stdout.strip()

    def https(self, app: str, *curl_args: str, path: str = "/") -> subprocess.CompletedProcess[str]:
        """``curl --resolve APP.DOMAIN:PORT:127.0.0.1 https://APP.DOMAIN:PORT/``."""
        host = self.host(app)
        return subprocess.run(
            ["curl", "-sS", "--max-time", "10", *curl_args, "--resolve",
             f"{host}:{self.https_port}:127.0.0.1", f"https://{host}:{self.https_port}{path}"],
            capture_output=True, text=True, timeout=30)


def until(check, timeout: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Retry ``check`` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.2)
