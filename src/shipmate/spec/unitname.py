"""Unit names, templates, instances and specifiers (pure).

Names follow fleet's ``api.ValidateName`` (itself systemd's ``unit_name_is_valid``), narrowed
so a name is always safe as a file name: at most 256 characters of ``A-Za-z0-9:_.@-``, one
suffix naming the type, not starting with ``@``. ``hello@.service`` is a template;
``hello@world.service`` is an instance of it (see fleet's ``unit.NewUnitNameInfo``).
"""

from __future__ import annotations

import dataclasses
import re

from shipmate.errors import ValidationError

MAX_UNIT_NAME = 256
#: The unit types Shipmate runs. fleet also took socket, timer, path, mount...: there is no
#: systemd on Shipmate's machines to give those meaning, so they are refused at submit.
SUPPORTED_TYPES = ("service", "container")
SYSTEMD_ONLY_TYPES = (
    "socket", "timer", "path", "device", "mount", "automount", "swap", "target", "slice",
    "scope", "busname", "snapshot",
)
_BODY = re.compile(r"^[A-Za-z0-9:_.@-]+$")
#: What to use instead of a systemd-only type, where there is something better to say.
INSTEAD = {
    "timer": 'there is no systemd here to fire timers: schedule an app\'s task with an '
             'app.json "cron" entry ({"command": "...", "schedule": "@daily"}; the scheduler '
             'leader runs it once per slot across the cluster, see `cron:list APP` and '
             'docs/paas.md), or run a .service whose ExecStart= loops '
             '(ExecStart=/bin/sh -c "while :; do TASK; sleep 3600; done")',
}


@dataclasses.dataclass(frozen=True)
class UnitName:
    """What a unit's name says about it (fleet's ``UnitNameInfo``).

    ``full``: ``foo@bar.service``; ``name``: ``foo@bar``; ``prefix``: ``foo``;
    ``instance``: ``bar`` (empty unless an instance); ``template``: ``foo@.service`` (empty
    unless a template or an instance); ``type``: ``service``.
    """

    full: str
    name: str
    prefix: str
    type: str
    template: str = ""
    instance: str = ""

    @property
    def is_template(self) -> bool:
        """``foo@.service``: a template, which can be submitted but never started."""
        return bool(self.template) and not self.instance

    @property
    def is_instance(self) -> bool:
        """``foo@1.service``: an instance, whose content comes from its template."""
        return bool(self.instance)


def parse_unit_name(full: str) -> UnitName:
    """Validate ``full`` and split it, or raise :class:`ValidationError` saying why."""
    _check_name(full)
    name, _, suffix = full.rpartition(".")
    prefix, at, instance = name.partition("@")
    if not at:
        return UnitName(full, name, name, suffix)
    return UnitName(full, name, prefix, suffix, template=f"{prefix}@.{suffix}", instance=instance)


def _check_name(full: str) -> None:
    hint = "unit names look like web.service, web@1.service or db.container"
    if not full:
        raise ValidationError("unit name cannot be empty", hint=hint)
    if len(full) > MAX_UNIT_NAME:
        raise ValidationError(f"unit name exceeds maximum length ({MAX_UNIT_NAME})", hint=hint)
    body, dot, suffix = full.rpartition(".")
    if not dot:
        raise ValidationError(f'unit name {full!r} must contain "."', hint=hint)
    if not suffix:
        raise ValidationError(f'unit name {full!r} cannot end in "."', hint=hint)
    if suffix in SYSTEMD_ONLY_TYPES:
        raise ValidationError(
            f"unit type .{suffix} is not supported ({full})",
            hint=INSTEAD.get(
                suffix, "Shipmate has no systemd to run it; use a .service or a .container unit"),
        )
    if suffix not in SUPPORTED_TYPES:
        raise ValidationError(f"invalid unit type: {suffix!r} ({full})", hint=hint)
    bad = next((c for c in body if not _BODY.match(c)), None)
    if not body or bad is not None:
        raise ValidationError(f"invalid character {bad!r} in unit name {full!r}", hint=hint)
    if body.startswith("@"):
        raise ValidationError(f'unit name {full!r} cannot start with "@"', hint=hint)
    if body.count("@") > 1:
        raise ValidationError(f'unit name {full!r} has more than one "@"', hint=hint)


_SPECIFIER = re.compile(r"%(.)", re.DOTALL)


def expand(
    text: str,
    unit_name: str,
    hostname: str | None = None,
    machine_id: str | None = None,
    boot_id: str | None = None,
) -> str:
    """Expand systemd specifiers in ``text`` for ``unit_name``.

    ``%n`` full name, ``%N`` name without the type suffix, ``%p``/``%P`` prefix, ``%i``/``%I``
    instance, ``%H`` host name, ``%m`` machine ID, ``%b`` boot ID, ``%%`` a literal ``%``.
    Name specifiers are known at submit; ``%H %m %b`` only on the machine running the unit,
    so they are left as they are when not given. Unknown specifiers are left as they are,
    as fleet does.
    """
    info = parse_unit_name(unit_name)
    table = {
        "n": info.full, "N": info.name, "p": info.prefix, "P": info.prefix,
        "i": info.instance, "I": info.instance, "%": "%",
        "H": hostname, "m": machine_id, "b": boot_id,
    }

    def sub(match: re.Match[str]) -> str:
        value = table.get(match.group(1))
        return match.group(0) if value is None else value

    return _SPECIFIER.sub(sub, text)
