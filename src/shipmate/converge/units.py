"""ContainerSpec -> ``.container`` unit text, and which units a manifest needs. Pure.

:func:`render_unit` is the inverse of :func:`shipmate.spec.unitcontainer.container_spec`:
``container_spec(parse(render_unit(spec, unit)), unit, ...) == spec`` whenever ``spec``
already carries its ``shipmate.unit`` label (:func:`unit_spec` adds it). Values are written so
that nothing the agent does to them on the way back changes them: every ``%`` is doubled
(specifiers are expanded in every value), word lists are double-quoted with C escapes (so
spaces, quotes, backslashes and newlines survive systemd's word splitting), and values that
are not split (image, paths, user) are refused when a unit line cannot hold them.

``apply --via-daemon`` (:mod:`shipmate.converge.via_daemon`) submits one unit per declared
container, named ``manifest-<manifest>-<container>.container``, pinned to one machine.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence

from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec, HealthCheck, Mount, PortMapping
from shipmate.spec.manifest import Manifest
from shipmate.spec.resources import format_cpus, format_memory
from shipmate.spec.unitcontainer import UNIT_LABEL
from shipmate.spec.unitfile import MAX_LINE
from shipmate.spec.units import parse_unit
from shipmate.spec.unitshipmate import RUNNING_FOR, WAIT

OWNER_SECTION = "X-Shipmate"  # records which manifest a unit belongs to (for --prune)
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_RESTART = {"no": None, "always": "always", "on-failure": "on-failure",
            "unless-stopped": "unless-stopped"}


def unit_name(manifest: str, container: str) -> str:
    """``manifest-<manifest>-<container>.container``."""
    return f"manifest-{manifest}-{container}.container"


def unit_prefix(manifest: str) -> str:
    """The name prefix of a manifest's units (other manifests may share it: see
    :func:`owner_of`)."""
    return f"manifest-{manifest}-"


def unit_spec(spec: ContainerSpec, unit: str) -> ContainerSpec:
    """``spec`` as the agent will build it from the unit: with the ``shipmate.unit`` label."""
    labels = dict(spec.labels)
    labels[UNIT_LABEL] = unit
    return dataclasses.replace(spec, labels=tuple(sorted(labels.items())))


def quote_word(word: str) -> str:
    """One word, double-quoted with C escapes, as systemd's word splitting reads it back."""
    out = []
    for ch in word:
        if ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or ch in _LINE_BREAKS:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _words(words: Iterable[str]) -> str:
    return " ".join(quote_word(w) for w in words)


def _plain(what: str, value: str) -> str:
    """A value the unit keeps as written (not word-split): it must fit on one line as is."""
    if not value or value != value.strip() or any(c in _LINE_BREAKS for c in value):
        raise ValidationError(f"{what} {value!r} cannot be written in a unit file",
                              hint="unit values cannot be empty, start or end with spaces, "
                              "or span lines")
    return value


def _span(what: str, seconds: float) -> str:
    text = repr(float(seconds))
    if seconds < 0 or "e" in text or "n" in text:
        raise ValidationError(f"{what} {seconds!r} cannot be written as a time span")
    return text + "s"


def _port(p: PortMapping) -> str:
    host = str(p.host_port) if p.host_port else ""
    if ":" in p.host_ip:
        text = f"[{p.host_ip}]:{host}:{p.container_port}"
    elif p.host_ip:
        text = f"{p.host_ip}:{host}:{p.container_port}"
    else:
        text = f"{host}:{p.container_port}" if host else str(p.container_port)
    return f"{text}/{p.protocol}"


def _volume(m: Mount) -> str:
    if ":" in m.source or ":" in m.target:
        raise ValidationError(f"volume {m.source}:{m.target}: ':' cannot be written in a unit")
    text = f"{_plain('volume source', m.source)}:{_plain('volume target', m.target)}"
    return text + (":ro" if m.read_only else "")


def _json_list(text: str) -> bool:
    """True if ``text`` would be read back as an exec-form (JSON array) health check."""
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def _health(h: HealthCheck) -> list[tuple[str, str]]:
    kind, *rest = h.test
    if kind == "CMD" and rest:
        cmd = json.dumps(rest)  # ASCII, one line; read back as a JSON array
    elif kind == "CMD-SHELL" and len(rest) == 1 and not _json_list(rest[0]) \
            and rest[0].lower() != "none":
        cmd = _plain("health check", rest[0])
    else:
        raise ValidationError(f"health check {list(h.test)!r} cannot be written as HealthCmd=",
                              hint="a shell command may not start with '[' in a unit (write "
                              "`test ...` instead of `[ ... ]`), or give the check as a list")
    return [("HealthCmd", cmd), ("HealthInterval", _span("health interval", h.interval)),
            ("HealthTimeout", _span("health timeout", h.timeout)),
            ("HealthRetries", str(h.retries)),
            ("HealthStartPeriod", _span("health start_period", h.start_period))]


def _argv(what: str, argv: Sequence[str] | None) -> str | None:
    if argv is None:
        return None
    if not argv:
        raise ValidationError(f"an empty {what} cannot be written in a unit",
                              hint=f"leave {what} out to use the image's")
    return _words(argv)


def container_options(spec: ContainerSpec) -> list[tuple[str, str]]:
    """The ``[Container]`` options for ``spec``, values as written (before ``%`` doubling)."""
    opts: list[tuple[str, str]] = [("ContainerName", spec.name),
                                   ("Image", _plain("image", spec.image))]
    for key, argv in (("Exec", spec.command), ("Entrypoint", spec.entrypoint)):
        text = _argv(key, argv)
        if text is not None:
            opts.append((key, text))
    opts += [("Environment", quote_word(f"{k}={v}")) for k, v in spec.env]
    opts += [("PublishPort", _port(p)) for p in spec.ports]
    opts += [("Volume", _volume(m)) for m in spec.mounts]
    for key, value in spec.labels:
        if not key or "=" in key:
            raise ValidationError(f"label {key!r} cannot be written in a unit (it has '=')")
        opts.append(("Label", quote_word(f"{key}={value}")))
    if spec.health is not None:
        opts += _health(spec.health)
    for key, field in (("Network", spec.network), ("HostName", spec.hostname),
                       ("WorkingDir", spec.working_dir), ("User", spec.user)):
        if field is not None:
            opts.append((key, _plain(key, field)))
    opts += [("Network", _plain("Network", n)) for n in spec.networks]
    for key, size in (("Memory", spec.memory), ("MemoryReservation", spec.memory_reservation)):
        if size is not None:
            opts.append((key, format_memory(size)))
    if spec.cpus is not None:
        opts.append(("CPUQuota", format_cpus(spec.cpus)))
    if spec.init:
        opts.append(("RunInit", "true"))
    return opts


def render_unit(spec: ContainerSpec, *, machine_id: str | None = None,
                owner: Mapping[str, str] | None = None, description: str = "") -> str:
    """The ``.container`` unit text running ``spec``; ``machine_id`` pins it to a machine,
    ``owner`` goes into an ``[X-Shipmate]`` section (ignored by the agent)."""
    if spec.restart not in _RESTART:
        raise ValidationError(f"container {spec.name}: restart {spec.restart!r} has no unit "
                              "equivalent", hint="use restart: always (the agent stops the "
                              "container when its unit stops, as unless-stopped would)")
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    if description:
        sections.append(("Unit", [("Description", _plain("description", description))]))
    sections.append(("Container", container_options(spec)))
    restart = _RESTART[spec.restart]
    if restart:
        sections.append(("Service", [("Restart", restart)]))
    if machine_id:
        sections.append(("X-Fleet", [("MachineID", _plain("machine ID", machine_id))]))
    if owner:
        sections.append((OWNER_SECTION, [(k, _plain(k, v)) for k, v in owner.items()]))
    text = "\n".join(f"[{name}]\n" + "".join(f"{k}={v.replace('%', '%%')}\n" for k, v in opts)
                     for name, opts in sections)
    for line in text.splitlines():
        if len(line.encode()) > MAX_LINE:
            raise ValidationError(f"container {spec.name}: {line.partition('=')[0]}= would be "
                                  f"longer than {MAX_LINE} bytes in its unit file",
                                  hint="shorten the value (long env values: use fewer bytes)")
    return text


@dataclasses.dataclass(frozen=True)
class DeclaredUnit:
    """One unit ``apply --via-daemon`` wants: its name, text and fleet hash."""

    name: str
    container: str
    text: str
    hash: str
    depends_on: tuple[str, ...] = ()  # unit names


def owner_of(text: str) -> str | None:
    """The manifest named in a unit's ``[X-Shipmate] Manifest=``, or None."""
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line[1:-1]
        elif section == OWNER_SECTION and line.startswith("Manifest="):
            return line.partition("=")[2].strip().replace("%%", "%")
    return None


def manifest_units(manifest: Manifest, machine_id: str) -> list[DeclaredUnit]:
    """Every declared container as a unit pinned to ``machine_id``, in dependency order."""
    out = []
    for decl in manifest.containers:
        name = unit_name(manifest.name, decl.name)
        owner = {"Manifest": manifest.name, "Container": decl.name}
        # The health gate of a replacement, as `shipmate apply` uses it (defaults left out).
        if decl.replace != "start-first":
            owner["Replace"] = decl.replace
        if decl.running_for != RUNNING_FOR:
            owner["RunningFor"] = _span("running_for", decl.running_for)
        if decl.wait != WAIT:
            owner["Wait"] = _span("wait", decl.wait)
        text = render_unit(unit_spec(decl.spec, name), machine_id=machine_id, owner=owner,
                           description=f"container {decl.name} of manifest {manifest.name}")
        unit = parse_unit(name, text)  # the check the daemon makes at submit, done here first
        out.append(DeclaredUnit(name, decl.name, text, unit.hash,
                                tuple(unit_name(manifest.name, d) for d in decl.depends_on)))
    return out


@dataclasses.dataclass(frozen=True)
class UnitPlan:
    """What to do with the registry: submit new units, replace changed ones (destroy, then
    submit: the registry refuses new content under an existing name), destroy pruned ones."""

    submit: tuple[str, ...]
    replace: tuple[str, ...]
    unchanged: tuple[str, ...]
    prune: tuple[str, ...]
    orphans: tuple[str, ...]  # this manifest's undeclared units, kept (no --prune)


def plan_units(declared: Sequence[DeclaredUnit], existing: Mapping[str, str],
               owned: Iterable[str], *, prune: bool) -> UnitPlan:
    """``existing``: unit name -> hash in the registry; ``owned``: the names of units there
    that belong to this manifest."""
    submit: list[str] = []
    replace: list[str] = []
    unchanged: list[str] = []
    for unit in declared:
        have = existing.get(unit.name)
        (submit if have is None else unchanged if have == unit.hash else replace).append(
            unit.name)
    wanted = {u.name for u in declared}
    extra = tuple(sorted(n for n in owned if n not in wanted))
    return UnitPlan(tuple(submit), tuple(replace), tuple(unchanged),
                    extra if prune else (), () if prune else extra)
