"""Settings, declared once: name, type, default, environment variable, help.

Like mitmproxy's ``options.py``: one table is the source for parsing the environment, for
``shipmate info`` and for the docs. Every setting may be given as ``SHIPMATE_<NAME>`` in the
environment (upper case); the daemon passes its resolved settings to what it starts.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipmate.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return "SHIPMATE_" + self.name.upper()


def _default_machine_id() -> str:
    return socket.gethostname()


SETTINGS: tuple[Setting, ...] = (
    Setting("state_dir", Path, Path("/var/lib/shipmate"), "where the daemon keeps its state"),
    Setting("socket", Path, None, "daemon API unix socket (default: STATE_DIR/shipmate.sock)"),
    Setting("debug", bool, False, "show tracebacks and debug logs"),
    Setting("cluster", str, "", "talk to this node of a local cluster: node-2 or NAME/node-2"),
    # store
    Setting("store", str, "sqlite", "desired-state store backend: sqlite or etcd"),
    Setting("etcd_endpoints", str, "http://127.0.0.1:2379", "comma-separated etcd endpoints"),
    Setting("etcd_timeout", float, 2.0,
            "seconds before an etcd request is given up (keep it below agent_ttl, so a dead "
            "member cannot cost a machine its lease)"),
    # engine
    Setting("docker_host", str, "unix:///var/run/docker.sock", "Docker engine address"),
    # machine / agent
    Setting("machine_id", str, None, "this machine's ID (default: hostname)"),
    Setting("public_ip", str, "127.0.0.1", "address other machines reach this one at"),
    Setting("metadata", str, "", "machine metadata, k=v,k2=v2 (fleet's --metadata)"),
    Setting("agent_ttl", float, 3.0, "seconds a machine's heartbeat lease lives"),
    Setting("reconcile_interval", float, 5.0, "seconds between full re-reads of the store"),
    # router
    Setting("router", bool, True, "run the nginx router on this machine"),
    Setting("http_port", int, 80, "port the router listens on for vhosts"),
    Setting("global_domain", str, "", "domain apps get as APP.DOMAIN (domains:set-global)"),
    Setting("nginx_bin", str, "nginx", "nginx executable"),
    # cache
    Setting("cache", bool, True, "run the package cache in the daemon"),
    Setting("cache_bind", str, "0.0.0.0", "address the package cache listens on"),
    Setting("cache_port", int, 3142, "port of the package cache (apt-cacher-ng's)"),
    Setting("cache_dir", Path, None, "cache storage (default: STATE_DIR/cache)"),
    Setting("cache_max_bytes", int, 20 * 2**30, "size cap of cached artifacts, LRU-evicted"),
    Setting("cache_fresh_seconds", float, 300.0, "how long volatile indexes are served unchecked"),
    Setting(
        "cache_upstreams", str,
        "deb.debian.org,security.debian.org,archive.ubuntu.com,security.ubuntu.com,"
        "ports.ubuntu.com,pypi.org,files.pythonhosted.org,registry.npmjs.org",
        "hosts the cache may fetch from (comma-separated; not an open proxy)",
    ),
    Setting("cache_clients", str, "127.0.0.0/8,::1/128,172.16.0.0/12,10.0.0.0/8,192.168.0.0/16",
            "client networks allowed to use the cache"),
    Setting("cache_pypi_upstream", str, "https://pypi.org",
            "PyPI index the /pypi/ mirror fetches simple pages from"),
    Setting("cache_npm_upstream", str, "https://registry.npmjs.org",
            "npm registry the /npm/ mirror fetches metadata from"),
    Setting("cache_upstream_timeout", float, 30.0,
            "seconds of upstream silence before a download is abandoned"),
    Setting("cache_header_timeout", float, 60.0,
            "seconds a client connection may take to send a request's headers (also how long "
            "an idle keep-alive connection is kept), as nginx's client_header_timeout"),
    Setting("cache_client_connections", int, 64,
            "concurrent connections one client address may hold; more are answered 503"),
    # paas
    Setting("ssh", bool, True, "run the SSH server (git push, CLI over SSH)"),
    Setting("ssh_port", int, 2222, "SSH server port"),
    Setting("debian_mirror", str, "http://deb.debian.org/debian", "mirror for base images"),
    # image distribution between machines (no registry)
    Setting("api_port", int, 0,
            "TCP port serving other machines this machine's app images (0: off; same on all)"),
    Setting("api_bind", str, "0.0.0.0", "address the TCP image route listens on"),
    Setting("api_clients", str, "127.0.0.0/8,::1/128",
            "client networks allowed on api_port (the cluster's subnet)"),
    Setting("image_pull_timeout", float, 300.0,
            "seconds a unit waits for its image from another machine before it fails"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: _parse_bool, int: int, float: float, str: str, Path: Path,
}


def parse_value(setting: Setting, text: str) -> Any:
    """Parse a textual value for ``setting`` or raise :class:`ConfigError` saying why."""
    try:
        return _PARSERS[setting.type](text)
    except ValueError as exc:
        raise ConfigError(
            f"{setting.env}={text!r} is not a valid {setting.type.__name__}",
            hint=f"{setting.name}: {setting.help}",
        ) from exc


@dataclasses.dataclass(frozen=True)
class Config:
    """Resolved settings. Build with :func:`load`; derived paths are filled in."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with some values replaced (unknown names are refused)."""
        for name in overrides:
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
        return _derive({**self.values, **overrides})

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        out = {}
        for s in SETTINGS:
            v = self.values[s.name]
            if v is not None:
                out[s.env] = ("1" if v else "0") if s.type is bool else str(v)
        return out


def _derive(values: dict[str, Any]) -> Config:
    state = Path(values["state_dir"])
    if values.get("socket") is None:
        values["socket"] = state / "shipmate.sock"
    if values.get("cache_dir") is None:
        values["cache_dir"] = state / "cache"
    if not values.get("machine_id"):
        values["machine_id"] = _default_machine_id()
    if values["store"] not in ("sqlite", "etcd"):
        raise ConfigError(
            f"unknown store backend {values['store']!r}", hint="use SHIPMATE_STORE=sqlite or etcd"
        )
    for name in ("cache_header_timeout", "cache_client_connections"):
        if values[name] <= 0:
            raise ConfigError(
                f"{name} is {values[name]}, not above 0",
                hint=f"set SHIPMATE_{name.upper()} to a positive number (see docs/cache.md)",
            )
    return Config(values)


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Resolve every setting from defaults, then the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        values[s.name] = parse_value(s, env[s.env]) if s.env in env else s.default
    values.update(overrides)
    return _derive(values)


def describe(config: Config) -> list[dict[str, str]]:
    """Rows for ``shipmate info``: name, value, environment variable, help."""
    return [
        {"name": s.name, "value": str(config.values[s.name]), "env": s.env, "help": s.help}
        for s in SETTINGS
    ]
