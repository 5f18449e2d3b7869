"""Settings, declared once: name, type, default, environment variable, help.

Like mitmproxy's ``options.py``: one declaration is the source for parsing the environment,
for ``shipmate info`` and for the docs. Each setting is one typed field of :class:`Config`
(its annotation is its type, :func:`setting` gives its default and help), so ``config.http_port``
is an ``int`` to the type checker too. Every setting may be given as ``SHIPMATE_<NAME>`` in the
environment (upper case); the daemon passes its resolved settings to what it starts.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from shipmate.errors import ConfigError, ValidationError

T = TypeVar("T")


def setting(default: T, help: str) -> T:
    """Declare a setting: its default and its help text (the field's type parses it)."""
    field: T = dataclasses.field(default=default, metadata={"help": help})
    return field


def derived(help: str) -> Any:
    """Declare a setting whose default is computed from others (see :class:`Config`)."""
    return dataclasses.field(default=None, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    """Resolved settings. Build with :func:`load`; derived paths are filled in."""

    state_dir: Path = setting(Path("/var/lib/shipmate"), "where the daemon keeps its state")
    socket: Path = derived("daemon API unix socket (default: STATE_DIR/shipmate.sock)")
    debug: bool = setting(False, "show tracebacks and debug logs")
    cluster: str = setting("", "talk to this node of a local cluster: node-2 or NAME/node-2")
    # store
    store: str = setting("sqlite", "desired-state store backend: sqlite or etcd")
    etcd_endpoints: str = setting("http://127.0.0.1:2379", "comma-separated etcd endpoints")
    etcd_timeout: float = setting(
        2.0, "seconds before an etcd request is given up (keep it below agent_ttl, so a dead "
        "member cannot cost a machine its lease)")
    cluster_tls_dir: str = setting(
        "", "directory with the cluster CA and this machine's certificate (cluster init/join "
        "fill STATE_DIR/pki): etcd over TLS with a client certificate, and the TCP API over "
        "HTTPS, its image route only for machines of the cluster ('': no TLS)")
    cluster_etcd_members: int = setting(
        3, "etcd members a cluster grows to (3 or 5): machines joining after that are etcd "
        "clients only")
    # engine
    docker_host: str = setting("unix:///var/run/docker.sock", "Docker engine address")
    # machine / agent
    machine_id: str = derived("this machine's ID (default: hostname)")
    public_ip: str = setting("127.0.0.1", "address other machines reach this one at")
    metadata: str = setting("", "machine metadata, k=v,k2=v2 (fleet's --metadata)")
    machine_cpus: float = setting(
        0.0, "CPUs units may reserve on this machine in all (0: the CPUs it has)")
    machine_memory: str = setting(
        "", "memory units may reserve on this machine in all, e.g. 14g (empty: what it has, "
        "from /proc/meminfo and its cgroup limit)")
    agent_ttl: float = setting(3.0, "seconds a machine's heartbeat lease lives")
    reconcile_interval: float = setting(5.0, "seconds between full re-reads of the store")
    # router
    router: bool = setting(True, "run the nginx router on this machine")
    http_port: int = setting(80, "port the router listens on for vhosts")
    https_port: int = setting(
        443, "port the router listens on for HTTPS, once an app has a certificate (0: off)")
    global_domain: str = setting("", "domain apps get as APP.DOMAIN (domains:set-global)")
    nginx_bin: str = setting("nginx", "nginx executable")
    acme_ca_bundle: str = setting(
        "", "CA file to verify the ACME server with ('' = the system's; tests: pebble's)")
    acme_renew_interval: float = setting(
        3600.0, "seconds between the scheduler leader's certificate renewal passes")
    cron_grace: float = setting(
        300.0, "seconds late a scheduled cron run may still start (after a leader change or "
        "an outage); a later run is skipped and logged")
    # cache
    cache: bool = setting(True, "run the package cache in the daemon")
    cache_bind: str = setting("0.0.0.0", "address the package cache listens on")
    cache_port: int = setting(3142, "port of the package cache (apt-cacher-ng's)")
    cache_dir: Path = derived("cache storage (default: STATE_DIR/cache)")
    cache_max_bytes: int = setting(20 * 2**30, "size cap of cached artifacts, LRU-evicted")
    cache_fresh_seconds: float = setting(
        300.0, "how long volatile indexes are served unchecked")
    cache_upstreams: str = setting(
        "deb.debian.org,security.debian.org,archive.ubuntu.com,security.ubuntu.com,"
        "ports.ubuntu.com,pypi.org,files.pythonhosted.org,registry.npmjs.org",
        "hosts the cache may fetch from (comma-separated; not an open proxy)")
    cache_clients: str = setting(
        "127.0.0.0/8,::1/128,172.16.0.0/12,10.0.0.0/8,192.168.0.0/16",
        "client networks allowed to use the cache")
    cache_pypi_upstream: str = setting(
        "https://pypi.org", "PyPI index the /pypi/ mirror fetches simple pages from")
    cache_npm_upstream: str = setting(
        "https://registry.npmjs.org", "npm registry the /npm/ mirror fetches metadata from")
    cache_upstream_timeout: float = setting(
        30.0, "seconds of upstream silence before a download is abandoned")
    cache_header_timeout: float = setting(
        60.0, "seconds a client connection may take to send a request's headers (also how long "
        "an idle keep-alive connection is kept), as nginx's client_header_timeout")
    cache_client_connections: int = setting(
        64, "concurrent connections one client address may hold; more are answered 503")
    # paas
    ssh: bool = setting(True, "run the SSH server (git push, CLI over SSH)")
    ssh_port: int = setting(2222, "SSH server port")
    push_max_bytes: int = setting(
        256 * 2**20, "largest git push accepted: the pack, and the pushed tree as a tar, in bytes")
    debian_mirror: str = setting("http://deb.debian.org/debian", "mirror for base images")
    # builds
    build_sandbox: bool = setting(
        True, "build on build_network, fenced so it reaches only the package cache (off: on the "
        "host's network, not isolated)")
    build_network: str = setting(
        "shipmate-build", "internal Docker network builds run on (see docs/paas.md)")
    build_timeout: float = setting(1800.0, "seconds a build may take before it is stopped")
    build_max_image_bytes: int = setting(8 * 2**30, "largest image a build may produce")
    build_max_output_bytes: int = setting(
        8 * 2**20, "build output streamed to the pusher, in bytes; beyond it lines are left out")
    checks_wait: float = setting(
        3.0, "seconds a new release without explicit health checks must stay up before it "
        "takes traffic (per app: checks:set APP wait N)")
    # image distribution between machines (no registry)
    api_port: int = setting(
        0, "TCP port serving other machines this machine's app images (0: off; same on all)")
    api_bind: str = setting("0.0.0.0", "address the TCP image route listens on")
    api_clients: str = setting(
        "127.0.0.0/8,::1/128", "client networks allowed on api_port (the cluster's subnet)")
    image_pull_timeout: float = setting(
        300.0, "seconds a unit waits for its image from another machine before it fails")
    # the operator's view
    events_max: int = setting(
        10_000, "audit events kept in the store (shipmate events); older ones are pruned")
    metrics_token_file: str = setting(
        "", "file holding the bearer token that /metrics on api_port requires ('': /metrics "
        "on the unix socket only)")
    # backups (docs/backup.md)
    backup_schedule: str = setting(
        "", "cron schedule (UTC) of automatic backups, e.g. @daily or '0 3 * * *' ('': none)")
    backup_dir: str = setting("", "directory of scheduled backups ('': STATE_DIR/backups)")
    backup_keep: int = setting(7, "scheduled backups kept in backup_dir; older ones are removed")

    dashboard_port: int = setting(
        0, "port the web dashboard listens on (0: no dashboard); with a global domain it is "
        "also routed at shipmate.DOMAIN (docs/dashboard.md)")
    dashboard_bind: str = setting(
        "127.0.0.1", "address the dashboard listens on (0.0.0.0: reachable by other machines' "
        "routers, needed in a cluster)")

    def __post_init__(self) -> None:
        """Fill in the derived settings left unset, then refuse what cannot work."""
        state = Path(self.state_dir)
        derived_values = {"socket": state / "shipmate.sock", "cache_dir": state / "cache",
                          "machine_id": socket.gethostname()}
        for name, value in derived_values.items():
            if not getattr(self, name):  # frozen: set once, here, before anyone reads it
                object.__setattr__(self, name, value)
        _check(self)

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with some values replaced (unknown names are refused)."""
        for name in overrides:
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
        return dataclasses.replace(self, **overrides)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        out = {}
        for s in SETTINGS:
            v = getattr(self, s.name)
            if v is not None:
                out[s.env] = ("1" if v else "0") if s.type is bool else str(v)
        return out


def _check(config: Config) -> None:
    if config.store not in ("sqlite", "etcd"):
        raise ConfigError(
            f"unknown store backend {config.store!r}", hint="use SHIPMATE_STORE=sqlite or etcd"
        )
    if config.cluster_etcd_members not in (1, 3, 5, 7):
        raise ConfigError(f"cluster_etcd_members is {config.cluster_etcd_members}",
                          hint="set SHIPMATE_CLUSTER_ETCD_MEMBERS to 3 or 5 (an odd number: "
                               "see docs/cluster.md)")
    if config.events_max < 1:
        raise ConfigError(f"events_max is {config.events_max}, not above 0",
                          hint="set SHIPMATE_EVENTS_MAX to how many events to keep "
                               "(see docs/events.md)")
    if not 0 <= config.checks_wait <= 600:
        raise ConfigError(f"checks_wait is {config.checks_wait}, not within 0-600 seconds",
                          hint="set SHIPMATE_CHECKS_WAIT to seconds from 0 to 600 "
                          "(see docs/paas.md)")
    _check_backups(config)
    for name in ("cache_header_timeout", "cache_client_connections"):
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(
                f"{name} is {value}, not above 0",
                hint=f"set SHIPMATE_{name.upper()} to a positive number (see docs/cache.md)",
            )


def _check_backups(config: Config) -> None:
    if config.backup_keep < 1:
        raise ConfigError(f"backup_keep is {config.backup_keep}, not above 0",
                          hint="set SHIPMATE_BACKUP_KEEP to how many scheduled backups to keep "
                               "(see docs/backup.md)")
    if config.backup_schedule:
        from shipmate import cronspec  # here: only a daemon with a schedule needs it

        try:
            cronspec.parse(config.backup_schedule)
        except ValidationError as exc:
            raise ConfigError(f"backup_schedule: {exc}", hint=cronspec.HINT) from exc


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting, as ``shipmate info`` and the environment see it."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return "SHIPMATE_" + self.name.upper()


def _settings() -> tuple[Setting, ...]:
    types = typing.get_type_hints(Config)
    return tuple(Setting(f.name, types[f.name], f.default, f.metadata["help"])
                 for f in dataclasses.fields(Config))


SETTINGS: tuple[Setting, ...] = _settings()
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


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Resolve every setting from defaults, then the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    values = {s.name: parse_value(s, env[s.env]) for s in SETTINGS if s.env in env}
    values.update(overrides)
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    return Config(**values)


def describe(config: Config) -> list[dict[str, str]]:
    """Rows for ``shipmate info``: name, value, environment variable, help."""
    return [
        {"name": s.name, "value": str(getattr(config, s.name)), "env": s.env, "help": s.help}
        for s in SETTINGS
    ]
