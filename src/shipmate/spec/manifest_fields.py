"""Field parsers for manifests: ports, volumes, health checks, env files. Pure."""

from __future__ import annotations

import posixpath
import re
from typing import NamedTuple

import yaml

from shipmate.errors import ValidationError
from shipmate.spec.container import HealthCheck, Mount, PortMapping
from shipmate.spec.manifest_yaml import Source
from shipmate.spec.resources import format_memory, parse_cpus, parse_memory

_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d*):)?(?P<container>\d+)"
    r"(?:/(?P<proto>tcp|udp))?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "running_for", "wait")
RESOURCE_KEYS = ("memory", "memory_reservation", "cpus")
#: What users of compose, Chef's ``docker_container`` or ``docker run`` may write instead.
RESOURCE_ALIASES = {"mem_limit": "memory", "memory_limit": "memory",
                    "mem_reservation": "memory_reservation", "nano_cpus": "cpus",
                    "cpu_quota": "cpus", "cpu_period": "cpus", "cpu_count": "cpus"}


def parse_port(src: Source, node: yaml.Node) -> PortMapping:
    """``"80:8000"``, ``"127.0.0.1:80:8000/udp"``, ``"8000"`` or ``8000`` (host port picked
    by the engine), or a mapping ``{host: 80, container: 8000, ip: ..., protocol: tcp}``."""
    if isinstance(node, yaml.MappingNode):
        f = src.fields(node, "port", ("host", "container", "ip", "protocol"))
        if "container" not in f:
            raise src.error(node, "port: `container` is required")
        try:
            return PortMapping(
                container_port=src.integer(f["container"][1], "port container"),
                host_port=src.integer(f["host"][1], "port host") if "host" in f else 0,
                host_ip=src.string(f["ip"][1], "port ip") if "ip" in f else "",
                protocol="udp" if "protocol" in f and src.word(
                    f["protocol"][1], "port protocol", ("tcp", "udp")) == "udp" else "tcp",
            )
        except ValidationError as exc:
            raise src.error(node, exc.message) from exc
    text = src.text(node, "port")
    m = _PORT.fullmatch(text)
    if m is None:
        raise src.error(node, f"port {text!r} is not [IP:][HOST:]CONTAINER[/tcp|udp]",
                        hint='e.g. "80:8000" or "127.0.0.1:8080:80/tcp"')
    try:
        return PortMapping(
            container_port=int(m["container"]),
            host_port=int(m["host"]) if m["host"] else 0,
            host_ip=(m["ip"] or "").strip("[]"),
            protocol="udp" if m["proto"] == "udp" else "tcp",
        )
    except ValidationError as exc:
        raise src.error(node, exc.message) from exc


def parse_volume(src: Source, node: yaml.Node, base_dir: str) -> Mount:
    """``SOURCE:TARGET[:ro|rw]``: SOURCE is an absolute path, a path relative to the manifest
    (``./data``), or a named volume."""
    text = src.string(node, "volume")
    parts = text.split(":")
    mode = "rw"
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise src.error(node, f"volume {text!r} is not SOURCE:TARGET[:ro|rw]",
                        hint='e.g. "/srv/data:/data", "./conf:/etc/app:ro" or "cache:/var/cache"')
    source, target = parts
    if source.startswith((".", "/")):
        source = posixpath.normpath(posixpath.join(base_dir, source))
    elif not _VOLUME_NAME.fullmatch(source):
        raise src.error(node, f"volume source {source!r} is neither a path nor a volume name",
                        hint="paths start with / or ./; names use letters, digits, _ . -")
    if not target.startswith("/"):
        raise src.error(node, f"volume target {target!r} must be an absolute path")
    return Mount(target=posixpath.normpath(target), source=source, read_only=mode == "ro")


def parse_health(src: Source, node: yaml.Node) -> tuple[HealthCheck | None, float, float]:
    """The ``health:`` block: a Docker health check (``test``) and/or a plain ``running_for``
    gate. Returns (check, running_for seconds, wait seconds)."""
    f = src.fields(node, "health", HEALTH_KEYS)
    running_for = src.duration(f["running_for"][1], "health running_for") if "running_for" in f \
        else 0.0
    wait = src.duration(f["wait"][1], "health wait") if "wait" in f else 60.0
    if "test" not in f:
        if "running_for" not in f:
            raise src.error(node, "health needs `test` (a check command) or `running_for`")
        return None, running_for, wait
    test_node = f["test"][1]
    if isinstance(test_node, yaml.SequenceNode):
        test = src.strings(test_node, "health test")
        if not test or test[0] not in ("CMD", "CMD-SHELL"):
            test = ["CMD", *test]
    else:
        test = ["CMD-SHELL", src.string(test_node, "health test")]
    if len(test) < 2:
        raise src.error(test_node, "health test is empty")
    check = HealthCheck(
        test=tuple(test),
        interval=src.duration(f["interval"][1], "health interval") if "interval" in f else 2.0,
        timeout=src.duration(f["timeout"][1], "health timeout") if "timeout" in f else 2.0,
        retries=src.integer(f["retries"][1], "health retries") if "retries" in f else 3,
        start_period=src.duration(f["start_period"][1], "health start_period")
        if "start_period" in f else 0.0,
    )
    return check, running_for, wait


def refuse_resource_aliases(src: Source, node: yaml.Node, container: str) -> None:
    """Name the key to use when a container has compose's or Docker's name for a limit."""
    for alias, (key, _) in src.mapping(node, f"container {container}").items():
        if alias in RESOURCE_ALIASES:
            raise src.error(key, f"container {container}: unknown key {alias!r}",
                            hint=f"write {RESOURCE_ALIASES[alias]}: instead (docs/manifests.md)")


class Resources(NamedTuple):
    """A container's limits (``docker run --memory``, ``--memory-reservation``, ``--cpus``)."""

    memory: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None


def parse_resources(src: Source, f: dict[str, tuple[yaml.Node, yaml.Node]],
                    container: str) -> Resources:
    """``memory:`` and ``memory_reservation:`` (``256m``, ``1g``; a bare number is bytes, as
    in Docker's API and Chef's ``memory``) and ``cpus:`` (``0.5``, or ``50%``). Absent keys
    stay None, which the spec leaves out of its hash: a manifest without them hashes as
    before."""
    sizes: dict[str, int] = {}
    cpus: float | None = None
    for key in (k for k in RESOURCE_KEYS if k in f):
        node, what = f[key][1], f"container {container}: {key}"
        text = src.text(node, what)
        try:
            if key == "cpus":
                cpus = parse_cpus(text, what=what)
            else:
                sizes[key] = parse_memory(text, what=what)
        except ValidationError as exc:
            raise src.error(node, exc.message, hint=exc.hint) from exc
    out = Resources(sizes.get("memory"), sizes.get("memory_reservation"), cpus)
    if out.memory and out.memory_reservation and out.memory_reservation > out.memory:
        raise src.error(f["memory_reservation"][1],
                        f"container {container}: memory_reservation "
                        f"{format_memory(out.memory_reservation)} is more than memory "
                        f"{format_memory(out.memory)}",
                        hint="the reservation is a soft floor under the limit: make it smaller")
    return out


def parse_env_file(path: str, text: str) -> dict[str, str]:
    """Docker's env-file format: ``KEY=VALUE`` lines, ``#`` comments, blank lines. A bare
    ``KEY`` (Docker would copy it from the caller's environment) is refused: a manifest must
    mean the same thing whoever applies it."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = raw.lstrip().partition("=")
        if not sep:
            raise ValidationError(
                f"{path}:{number}: {line!r} has no '=' (values from the caller's environment "
                "are not supported)", hint="write KEY=VALUE")
        if not _ENV_NAME.fullmatch(key):
            raise ValidationError(f"{path}:{number}: invalid variable name {key!r}")
        out[key] = value
    return out


def check_env_name(src: Source, node: yaml.Node, key: str) -> None:
    """Refuse environment variable names Docker would mangle."""
    if not _ENV_NAME.fullmatch(key):
        raise src.error(node, f"invalid environment variable name {key!r}",
                        hint="use letters, digits and _, not starting with a digit")
