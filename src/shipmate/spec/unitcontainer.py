"""``.container`` units: a Podman-Quadlet-like ``[Container]`` section -> ContainerSpec (pure).

Recognised keys (all others are refused, as Quadlet does): ``Image`` (required), ``Exec``,
``Entrypoint``, ``Environment``, ``EnvironmentFile``, ``PublishPort``, ``Volume``, ``Label``,
``HealthCmd``, ``HealthInterval``, ``HealthTimeout``, ``HealthRetries``, ``HealthStartPeriod``,
``Network``, ``User``, ``WorkingDir``, ``ContainerName``, ``HostName``, ``RunInit`` (an init
as PID 1, Docker's ``--init``: ``true``/``false``), and the resource limits ``Memory=``
(``256m``; systemd's ``MemoryMax=`` is accepted too), ``MemoryReservation=`` and ``CPUQuota=``
(``50%`` is half a CPU). ``Restart=`` in
``[Service]`` becomes the container's restart policy (``no``, ``always``, ``on-failure``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Mapping

from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec, HealthCheck, Mount, PortMapping, make_spec
from shipmate.spec.resources import parse_cpus, parse_memory
from shipmate.spec.unitfile import UnitFile, UnitOption
from shipmate.spec.unitname import expand
from shipmate.spec.unitwords import split_words

SECTION = "Container"
UNIT_LABEL = "shipmate.unit"
KEYS = (
    "Image", "Exec", "Entrypoint", "Environment", "EnvironmentFile", "PublishPort", "Volume",
    "Label", "HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries",
    "HealthStartPeriod", "Network", "User", "WorkingDir", "ContainerName", "HostName",
    "Memory", "MemoryMax", "MemoryReservation", "CPUQuota",
    "RunInit",
)
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
_RESTART = {"no": "no", "always": "always", "on-failure": "on-failure",
            "unless-stopped": "unless-stopped"}
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(seconds?|sec|s|minutes?|min|ms|m|hours?|hr|h|us|)")
_SPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0,
               "seconds": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
               "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}


def default_container_name(unit_name: str) -> str:
    """``web@1.container`` -> ``shipmate-web_1``."""
    return "shipmate-" + unit_name.rpartition(".")[0].replace("@", "_")


def check_container_unit(unit: UnitFile, unit_name: str) -> ContainerSpec:
    """Refuse a ``.container`` unit that could never become a spec (at submit time); the
    spec it makes on a machine called ``host``."""
    return container_spec(unit, unit_name, hostname="host", machine_id="machine")


def container_spec(
    unit: UnitFile,
    unit_name: str,
    *,
    hostname: str,
    machine_id: str,
    env_files: Mapping[str, str] | None = None,
) -> ContainerSpec:
    """Build the spec for a ``.container`` unit on a given machine.

    Specifiers (``%n %i %H %m``...) are expanded in every value. ``env_files`` holds the
    variables the caller read from the ``EnvironmentFile=`` paths (see :func:`env_file_paths`);
    explicit ``Environment=`` wins over them, as in systemd.
    """
    opts = _options(unit, unit_name, hostname, machine_id)
    image = _last(opts, "Image")
    if not image:
        raise ValidationError(f"{unit_name}: [Container] needs Image=",
                              hint="for example Image=shipmate/base:bookworm")
    env = dict(env_files or {})
    env.update(_pairs(opts, "Environment"))
    labels = {UNIT_LABEL: unit_name, **_pairs(opts, "Label")}
    return make_spec(
        _last(opts, "ContainerName") or default_container_name(unit_name),
        image,
        command=_argv(opts, "Exec"),
        entrypoint=_argv(opts, "Entrypoint"),
        env=env,
        ports=[_port(o) for o in opts if o.name == "PublishPort"],
        mounts=[_volume(o) for o in opts if o.name == "Volume"],
        labels=labels,
        restart=_restart(unit, unit_name),
        health=_health(opts),
        network=_networks(opts)[0],
        networks=_networks(opts)[1],
        hostname=_last(opts, "HostName"),
        working_dir=_last(opts, "WorkingDir"),
        user=_last(opts, "User"),
        **_resources(opts),
        init=_flag(opts, "RunInit"),
    )


def _resources(opts: list[UnitOption]) -> dict[str, int | float]:
    """``Memory=``/``MemoryMax=``, ``MemoryReservation=``, ``CPUQuota=`` as spec fields."""
    out: dict[str, int | float] = {}
    for key, field in (("MemoryMax", "memory"), ("Memory", "memory"),
                       ("MemoryReservation", "memory_reservation")):
        value = _last(opts, key)
        if value is not None and value.lower() != "infinity":
            out[field] = parse_memory(value, what=f"{key}=")
    quota = _last(opts, "CPUQuota")
    if quota is not None:
        out["cpus"] = parse_cpus(quota, what="CPUQuota=")
    return out


def env_file_paths(unit: UnitFile, unit_name: str) -> list[tuple[str, bool]]:
    """``EnvironmentFile=`` paths as ``(path, optional)``; a leading ``-`` marks optional."""
    out = []
    for value in unit.values(SECTION, "EnvironmentFile"):
        path = expand(value, unit_name)
        optional = path.startswith("-")
        out.append((path.lstrip("-"), optional))
    return out


def _options(unit: UnitFile, unit_name: str, hostname: str, machine_id: str) -> list[UnitOption]:
    out = []
    for opt in unit.section(SECTION):
        if opt.name not in KEYS:
            raise ValidationError(f"line {opt.line}: unsupported key {opt.name!r} in [Container]",
                                  hint="supported: " + ", ".join(KEYS))
        value = expand(opt.value, unit_name, hostname, machine_id)
        out.append(dataclasses.replace(opt, value=value))
    return out


def _last(opts: list[UnitOption], name: str) -> str | None:
    values = [o.value for o in opts if o.name == name]
    return values[-1] if values and values[-1] else None


def _networks(opts: list[UnitOption]) -> tuple[str | None, list[str]]:
    """``Network=`` may repeat (as in Quadlet): the first is the network the container is
    created on, the others it joins right after."""
    names = [o.value for o in opts if o.name == "Network" and o.value]
    return (names[0] if names else None), names[1:]


def _split(opt: UnitOption) -> list[str]:
    try:
        return split_words(opt.value)
    except ValidationError as exc:
        raise ValidationError(f"line {opt.line}: {opt.name}: {exc.message}") from None


def _argv(opts: list[UnitOption], name: str) -> list[str] | None:
    found = [o for o in opts if o.name == name]
    return _split(found[-1]) if found and found[-1].value else None


def _flag(opts: list[UnitOption], name: str) -> bool:
    found = [o for o in opts if o.name == name]
    if not found or not found[-1].value:
        return False
    value = _BOOLEANS.get(found[-1].value.lower())
    if value is None:
        raise ValidationError(f"line {found[-1].line}: {name}={found[-1].value!r} is not a "
                              "boolean", hint=f"use {name}=true or {name}=false")
    return value


def _pairs(opts: list[UnitOption], name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for opt in (o for o in opts if o.name == name):
        for word in _split(opt):
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise ValidationError(f"line {opt.line}: {name}: {word!r} is not KEY=VALUE")
            out[key] = value
    return out


def _port(opt: UnitOption) -> PortMapping:
    text, _, proto = opt.value.partition("/")
    proto = proto or "tcp"
    ip = ""
    if text.startswith("["):  # [::1]:8080:80
        ip, _, text = text[1:].partition("]")
        text = text.removeprefix(":")
    parts = text.split(":")
    if len(parts) == 3 and not ip:
        ip = parts.pop(0)
    try:
        if proto not in ("tcp", "udp") or len(parts) > 2 or not parts[-1]:
            raise ValueError
        host = int(parts[0]) if len(parts) == 2 and parts[0] else 0
        return PortMapping(int(parts[-1]), host, ip, proto)  # type: ignore[arg-type]
    except (ValueError, ValidationError):
        raise ValidationError(
            f"line {opt.line}: PublishPort={opt.value!r} is not [[IP:][HOST]:]PORT[/tcp|udp]"
        ) from None


def _volume(opt: UnitOption) -> Mount:
    parts = opt.value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValidationError(f"line {opt.line}: Volume={opt.value!r} is not SOURCE:TARGET[:ro]")
    source, target = parts[0], parts[1]
    flags = parts[2].split(",") if len(parts) == 3 else []
    if not source.startswith("/") and not _VOLUME_NAME.match(source):
        raise ValidationError(f"line {opt.line}: Volume source {source!r} is neither an "
                              "absolute path nor a volume name")
    if any(f not in ("ro", "rw", "z", "Z") for f in flags):
        raise ValidationError(f"line {opt.line}: Volume options {parts[2]!r}: use ro or rw")
    try:
        return Mount(target, source, read_only="ro" in flags)
    except ValidationError as exc:
        raise ValidationError(f"line {opt.line}: {exc.message}") from None


def parse_timespan(text: str) -> float:
    """systemd time span (``30s``, ``1min 30s``, ``500ms``, ``5``) in seconds."""
    pos, total, clean = 0, 0.0, text.strip()
    while pos < len(clean):
        match = _SPAN.match(clean, pos)
        if not match or match.end() == pos:
            raise ValueError(text)
        total += float(match.group(1)) * _SPAN_UNITS[match.group(2)]
        pos = match.end()
        while pos < len(clean) and clean[pos] == " ":
            pos += 1
    if not clean:
        raise ValueError(text)
    return total


def _health(opts: list[UnitOption]) -> HealthCheck | None:
    cmd = _last(opts, "HealthCmd")
    if cmd is None or cmd.lower() == "none":
        return None
    test: tuple[str, ...] = ("CMD-SHELL", cmd)
    if cmd.startswith("["):
        # A JSON array is an exec-form check; anything else (`[ -f /x ]`) is a shell command.
        with contextlib.suppress(json.JSONDecodeError, TypeError):
            parsed = json.loads(cmd)
            if isinstance(parsed, list):
                test = ("CMD", *(str(a) for a in parsed))
    kwargs: dict[str, float | int] = {}
    for key, field in (("HealthInterval", "interval"), ("HealthTimeout", "timeout"),
                       ("HealthStartPeriod", "start_period")):
        value = _last(opts, key)
        if value is not None:
            try:
                kwargs[field] = parse_timespan(value)
            except ValueError:
                raise ValidationError(f"{key}={value!r} is not a time span like 5s") from None
    retries = _last(opts, "HealthRetries")
    if retries is not None:
        if not retries.isdigit():
            raise ValidationError(f"HealthRetries={retries!r} is not a number")
        kwargs["retries"] = int(retries)
    return HealthCheck(test, **kwargs)  # type: ignore[arg-type]


def _restart(unit: UnitFile, unit_name: str) -> str:
    value = unit.value("Service", "Restart") or "no"
    if value not in _RESTART:
        raise ValidationError(f"{unit_name}: Restart={value!r} is not supported for containers",
                              hint="use Restart=no, always or on-failure")
    return _RESTART[value]


__all__ = ["check_container_unit", "container_spec", "default_container_name", "env_file_paths",
           "parse_timespan"]
