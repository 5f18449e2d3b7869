"""Unit files as fleet knows them: parse, validate, hash, instantiate (pure).

The entry point is :func:`parse_unit` (name + text -> :class:`Unit`, or ValidationError
naming the problem). Layers below it:

- :mod:`shipmate.spec.unitfile`: the syntax (sections, ordered options, comments,
  continuations), the canonical serialization and fleet's SHA-1 hash;
- :mod:`shipmate.spec.unitname`: names, templates/instances, specifiers (:func:`expand`);
- :mod:`shipmate.spec.unitreqs`: ``[X-Fleet]`` requirements and fleet's invalid combinations;
- :mod:`shipmate.spec.unitcontainer`: ``[Container]`` -> :class:`ContainerSpec`.
"""

from __future__ import annotations

import dataclasses

from shipmate.errors import ValidationError
from shipmate.spec.unitcontainer import check_container_unit, container_spec, env_file_paths
from shipmate.spec.unitfile import UnitFile, UnitOption, parse, serialize, unit_hash
from shipmate.spec.unitname import UnitName, expand, parse_unit_name
from shipmate.spec.unitreqs import Requirements, glob_match, read_requirements
from shipmate.spec.unitshipmate import unit_options

#: Sections each unit type may have (besides any ``X-...`` extension section).
ALLOWED_SECTIONS = {
    "service": ("Unit", "Service", "Install", "X-Fleet"),
    "container": ("Unit", "Container", "Service", "Install", "X-Fleet"),
}
#: systemd's Restart= values; the agent implements them for processes.
RESTART_VALUES = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort",
                  "always")
#: The ``Type=`` values the agent's supervisor runs (``forking`` and ``dbus`` it cannot).
SERVICE_TYPES = ("simple", "exec", "notify", "oneshot", "idle")


@dataclasses.dataclass(frozen=True)
class Unit:
    """A validated unit: its name, the text as submitted, the parsed file and requirements."""

    name: str
    text: str
    file: UnitFile
    requirements: Requirements

    @property
    def info(self) -> UnitName:
        """Template/instance/prefix facts from the name."""
        return parse_unit_name(self.name)

    @property
    def hash(self) -> str:
        """fleet's unit hash (SHA-1 of the canonical serialization), 40 hex digits."""
        return unit_hash(self.file)

    @property
    def type(self) -> str:
        """``service`` or ``container``."""
        return self.info.type

    @property
    def is_template(self) -> bool:
        """True for ``name@.type``: can be submitted, never scheduled."""
        return self.info.is_template

    @property
    def description(self) -> str:
        """``[Unit] Description=`` (first one, as fleet shows it), or empty."""
        values = self.file.values("Unit", "Description")
        return values[0] if values else ""


def parse_unit(name: str, text: str) -> Unit:
    """Parse and validate unit ``name`` with content ``text``."""
    info = parse_unit_name(name)
    try:
        unit_file = parse(text)
        _check_sections(unit_file, info)
        reqs = read_requirements(unit_file, info)
        if info.type == "service":
            _check_service(unit_file)
        else:
            unit_options(unit_file, name, check_container_unit(unit_file, name))
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.message}", hint=exc.hint) from None
    return Unit(name, text, unit_file, reqs)


def instantiate(template: Unit, instance_name: str) -> Unit:
    """The instance ``foo@1.service`` of template ``foo@.service``: same content, requirements
    expanded for the instance name."""
    info = parse_unit_name(instance_name)
    if not info.is_instance or info.template != template.name:
        raise ValidationError(f"{instance_name} is not an instance of {template.name}")
    return parse_unit(instance_name, template.text)


def _check_sections(unit_file: UnitFile, info: UnitName) -> None:
    allowed = ALLOWED_SECTIONS[info.type]
    for opt in unit_file.options:
        if opt.section not in allowed and not opt.section.startswith("X-"):
            raise ValidationError(
                f"line {opt.line}: unknown section [{opt.section}] in a .{info.type} unit",
                hint="allowed: " + ", ".join(f"[{s}]" for s in allowed) + " and [X-...]",
            )
    if not unit_file.options:
        raise ValidationError("unit file is empty", hint="a unit needs at least [Service] "
                              "ExecStart= (or [Container] Image= for .container)")


def _check_service(unit_file: UnitFile) -> None:
    if not unit_file.values("Service", "ExecStart"):
        raise ValidationError("service has no ExecStart=; refusing",
                              hint="add [Service] ExecStart=/path/to/command")
    restart = unit_file.value("Service", "Restart")
    if restart is not None and restart not in RESTART_VALUES:
        raise ValidationError(f"Restart={restart!r} is not one of " + ", ".join(RESTART_VALUES))
    kind = unit_file.value("Service", "Type")
    if kind == "forking":
        # The agent is the init: it watches the process ExecStart starts. A program that
        # forks into the background and exits would look finished, its daemon unwatched.
        raise ValidationError(
            "Type=forking is not supported: there is no systemd here, the agent supervises "
            "the process ExecStart= starts, and one that daemonizes and exits looks finished",
            hint="run the program in the foreground with Type=simple (most daemons have a "
                 "flag for it: nginx -g 'daemon off;', redis-server --daemonize no)")
    if kind is not None and kind not in SERVICE_TYPES:
        raise ValidationError(f"Type={kind!r} is not supported",
                              hint="use one of " + ", ".join(SERVICE_TYPES))


__all__ = [
    "Requirements", "Unit", "UnitFile", "UnitName", "UnitOption", "container_spec",
    "env_file_paths", "expand", "glob_match", "instantiate", "parse", "parse_unit",
    "parse_unit_name", "serialize", "unit_hash",
]
