"""A release's processes as ``.container`` units (pure). Each process instance (``web.1``,
``worker.1``, ...) becomes one unit that the scheduler places and an agent runs.

Unit names are ``APP_TYPE.N_TAG.container``: app names cannot contain ``_``, so the prefix
``APP_`` names exactly one app's units. ``TAG`` is ``vN-XXXX``: the release and a deploy ID,
so a redeploy of the same release starts new units beside the old ones.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from shipmate.errors import ValidationError
from shipmate.paas.attach import UnitExtras, extras_lines
from shipmate.paas.resources import ProcessResources

# Declared below the PaaS (the daemon's image distribution reads them too); re-exported here.
from shipmate.spec.labels import APP_LABEL as APP_LABEL
from shipmate.spec.labels import IMAGE_SOURCE_LABEL as IMAGE_SOURCE_LABEL

CONTAINER_PORT = 5000
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PROCESS_LABEL = "shipmate.process"
INSTANCE_LABEL = "shipmate.instance"
RELEASE_LABEL = "shipmate.release"  # the route tag: vN-XXXX


@dataclasses.dataclass(frozen=True)
class InstanceUnit:
    """One process instance of a deploy."""

    name: str
    process: str
    index: int
    text: str


def unit_prefix(app: str) -> str:
    """Every unit of ``app`` starts with this."""
    return f"{app}_"


def parse_unit_name(name: str) -> tuple[str, str, int, str] | None:
    """``APP_TYPE.N_TAG.container`` -> (app, type, n, tag), or None for other units."""
    if not name.endswith(".container") or "_" not in name:
        return None
    app, _, rest = name.removesuffix(".container").partition("_")
    proc_n, _, tag = rest.rpartition("_")
    proc, _, n = proc_n.rpartition(".")
    if not (app and proc and n.isdigit() and tag):
        return None
    return app, proc, int(n), tag


def escape_value(value: str) -> str:
    """Quote ``value`` for a unit file's ``Environment=`` (systemd's C-style escapes inside
    double quotes, ``%%`` for a literal ``%``), so any config value survives exactly."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def instance_units(
    app: str,
    tag: str,
    image: str,
    processes: Mapping[str, str],
    formation: Mapping[str, int],
    env: Mapping[str, str],
    git_rev: str,
    image_source: str = "",
    extras: UnitExtras | None = None,
    resources: Mapping[str, ProcessResources] | None = None,
    port: int = CONTAINER_PORT,
) -> list[InstanceUnit]:
    """The units of one deploy: ``formation[type]`` instances of each process type.
    ``image_source`` names the machine that has the image (the builder), for the machines
    the units land on that do not; ``extras`` adds the app's storage and service links;
    ``resources`` the limits of each process type; ``port`` the one ``$PORT`` says
    (``ports:set``)."""
    units = []
    for proc in sorted(formation):
        if proc not in processes:
            raise ValidationError(f"Process type {proc!r} is not in the Procfile",
                                  hint="known types: " + ", ".join(sorted(processes)))
        for i in range(1, formation[proc] + 1):
            name = f"{app}_{proc}.{i}_{tag}.container"
            own = (resources or {}).get(proc, ProcessResources())
            text = _unit_text(app, proc, i, tag, image, processes[proc], env, git_rev,
                              image_source, own.unit_lines(), port)
            units.append(InstanceUnit(name, proc, i, _with_extras(
                text, extras, own.reservation_lines())))
    return units


def _with_extras(text: str, extras: UnitExtras | None, reserve: list[str] | None = None) -> str:
    """``text`` with the extras' ``[Container]`` lines (before ``[Service]``) and one
    ``[X-Fleet]`` section at the end: the extras' placement and the ``reserve`` lines."""
    container, fleet = extras_lines(extras) if extras is not None else ([], [])
    if reserve:
        fleet = [*(fleet or ["", "[X-Fleet]"]), *reserve]
    if not container and not fleet:
        return text
    head, sep, tail = text.partition("\n\n[Service]\n")
    return "\n".join([head, *container]) + sep + tail + "".join(f"{line}\n" for line in fleet)


def _unit_text(app: str, proc: str, i: int, tag: str, image: str, command: str,
               env: Mapping[str, str], git_rev: str, image_source: str = "",
               limits: list[str] | None = None, port: int = CONTAINER_PORT) -> str:
    full_env = {**env, "PORT": str(port), "DYNO": f"{proc}.{i}", "GIT_REV": git_rev}
    # RunInit: an init as PID 1 (Dokku runs apps under tini too), so an app that never set up
    # a SIGTERM handler still stops at once when an old instance is retired.
    lines = ["[Unit]", f"Description={app} {proc}.{i} ({tag})", "", "[Container]",
             f"Image={image}", "RunInit=true", *(limits or [])]
    if command:
        # `exec VAR=x cmd` would try to run "VAR=x": a Procfile line that sets variables first
        # (Dokku runs them through a shell) runs through `env`.
        prefix = "env " if _ASSIGNMENT.match(command) else ""
        lines.append(f'Exec=/bin/sh -c "exec {prefix}{escape_value(command)}"')
    for key in sorted(full_env):
        lines.append(f'Environment="{key}={escape_value(full_env[key])}"')
    if proc == "web":
        lines.append(f"PublishPort={port}")
    labels = [(APP_LABEL, app), (PROCESS_LABEL, proc), (INSTANCE_LABEL, f"{proc}.{i}"),
              (RELEASE_LABEL, tag)]
    if image_source:
        labels.append((IMAGE_SOURCE_LABEL, image_source))
    for label, value in labels:
        lines.append(f"Label={label}={value}")
    lines += ["", "[Service]", "Restart=always"]
    if proc == "web":  # the agent publishes its endpoint for the app's route
        lines += ["", "[X-Shipmate]", f"Route={app}", f"RoutePort={port}",
                  f"Release={tag}"]
    return "\n".join(lines) + "\n"
