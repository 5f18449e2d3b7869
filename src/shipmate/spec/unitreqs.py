"""fleet's ``[X-Fleet]`` scheduling requirements: read, expand and validate (pure).

The rules follow fleet's ``job/job.go`` (which keys exist, the deprecated ``X-`` and
``X-Condition`` spellings, specifier expansion with ``%n %N %p %i``, the first ``MachineID``
wins, the last ``Global`` wins) and ``api/units.go`` ``ValidateOptions`` (which combinations
are refused). Where fleet silently ignored a bad value (``MachineMetadata=oops``,
``Global=maybe``) Shipmate refuses it, naming the line.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
import shlex
from collections.abc import Callable
from typing import Literal, TypeVar

from shipmate.errors import ValidationError
from shipmate.spec.resources import parse_cpus, parse_memory
from shipmate.spec.unitfile import UnitFile, UnitOption
from shipmate.spec.unitname import UnitName

SECTION = "X-Fleet"
N = TypeVar("N", int, float)

#: Accepted keys -> the requirement they mean (fleet's ``validRequirements``).
KEYS = {
    "MachineID": "machine_id",
    "X-ConditionMachineID": "machine_id",
    "X-ConditionMachineBootID": "machine_id",
    "MachineOf": "machine_of",
    "X-ConditionMachineOf": "machine_of",
    "MachineMetadata": "metadata",
    "X-ConditionMachineMetadata": "metadata",
    "Conflicts": "conflicts",
    "X-Conflicts": "conflicts",
    "Global": "global",
    "Replaces": "replaces",
    # Shipmate's own: what the unit reserves on its machine (docs/fleet.md, "Resources").
    "ReserveMemory": "reserve_memory",
    "ReserveCPU": "reserve_cpus",
}
_TRUE = ("true", "yes", "1", "on", "t")
_FALSE = ("false", "no", "0", "off", "f", "")
_GLOB_OK = re.compile(r"^[A-Za-z0-9:_.@*?\[\]!^-]+$")


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What the scheduler must honour for one unit. Empty means "anywhere".

    ``metadata`` maps a key to the values any of which satisfies it (all keys must match).
    ``conflicts`` and ``replaces`` are glob patterns (Go ``path.Match`` syntax).
    ``reserve_memory`` (bytes) and ``reserve_cpus`` are what the unit reserves on its machine
    (0: nothing): the scheduler places it only where that fits beside what is placed there.
    """

    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    global_: bool = False
    reserve_memory: int = 0
    reserve_cpus: float = 0.0

    @property
    def metadata_dict(self) -> dict[str, tuple[str, ...]]:
        """``metadata`` as a dict."""
        return dict(self.metadata)

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (``global`` spelled without the underscore; reservations only
        when set, so records of units without them read as before)."""
        out: dict[str, object] = {
            "machine_id": self.machine_id, "machine_of": list(self.machine_of),
            "metadata": {k: list(v) for k, v in self.metadata},
            "conflicts": list(self.conflicts), "replaces": list(self.replaces),
            "global": self.global_,
        }
        if self.reserve_memory:
            out["reserve_memory"] = self.reserve_memory
        if self.reserve_cpus:
            out["reserve_cpus"] = self.reserve_cpus
        return out


def split_multivalue(value: str) -> list[str]:
    """fleet's ``parseMultivalueLine``: ``"a=b" "c=d"`` is two values; anything else is one."""
    if not (len(value) >= 2 and value.startswith('"') and value.endswith('"')):
        return [value]
    try:
        return shlex.split(value)
    except ValueError:
        return [value]


def _split_names(value: str) -> list[str]:
    # Unit names cannot contain spaces, so for Conflicts/Replaces/MachineOf several
    # space-separated patterns on one line are several values (systemd's list syntax).
    return [v for part in split_multivalue(value) for v in part.split()]


def _expand(value: str, name: UnitName) -> str:
    # fleet's unitPrintf: only the name specifiers, applied in this order.
    out = value.replace("%n", name.full).replace("%N", name.name)
    return out.replace("%p", name.prefix).replace("%i", name.instance)


def read_requirements(unit: UnitFile, name: UnitName) -> Requirements:
    """Collect and validate the ``[X-Fleet]`` section of ``unit`` named ``name``."""
    found: dict[str, list[tuple[UnitOption, str]]] = {k: [] for k in set(KEYS.values())}
    for opt in unit.section(SECTION):
        kind = KEYS.get(opt.name)
        if kind is None:
            raise ValidationError(
                f"line {opt.line}: unrecognized requirement in [X-Fleet] section: {opt.name!r}",
                hint="known: " + ", ".join(KEYS),
            )
        if kind.startswith("reserve_"):
            found[kind].append((opt, opt.value.strip()))
            continue
        split = _split_names if kind in ("conflicts", "replaces", "machine_of") else (
            split_multivalue)
        found[kind].extend((opt, _expand(v, name)) for v in split(opt.value) if v)
    reqs = Requirements(
        machine_id=_machine_id(found["machine_id"]),
        machine_of=_patterns(found["machine_of"], "MachineOf", globs=False),
        metadata=_metadata(found["metadata"]),
        conflicts=_patterns(found["conflicts"], "Conflicts", globs=True),
        replaces=_patterns(found["replaces"], "Replaces", globs=True),
        global_=_global(found["global"]),
        reserve_memory=_last(found["reserve_memory"], lambda v, o: parse_memory(
            v, what=f"line {o.line}: ReserveMemory")),
        reserve_cpus=_last(found["reserve_cpus"], lambda v, o: parse_cpus(
            v, what=f"line {o.line}: ReserveCPU")),
    )
    check_combinations(reqs)
    return reqs


def _machine_id(values: list[tuple[UnitOption, str]]) -> str | None:
    # fleet's RequiredTarget: the modern key first, then the deprecated ones; first value wins.
    order = ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID")
    for key in order:
        for opt, value in values:
            if opt.name == key:
                return value
    return None


def _patterns(values: list[tuple[UnitOption, str]], what: str, *, globs: bool) -> tuple[str, ...]:
    out: list[str] = []
    for opt, value in values:
        ok = _GLOB_OK.match(value) if globs else _GLOB_OK.match(value) and not any(
            c in value for c in "*?[]")
        if not ok:
            kind = "unit name pattern" if globs else "unit name"
            raise ValidationError(f"line {opt.line}: {what}={value!r} is not a valid {kind}")
        if globs:
            _check_glob(opt, value)
        if value not in out:
            out.append(value)
    return tuple(out)


def _check_glob(opt: UnitOption, pattern: str) -> None:
    depth = 0
    for c in pattern:
        depth += c == "["
        depth -= c == "]"
        if depth < 0 or depth > 1:
            raise ValidationError(f"line {opt.line}: malformed glob pattern {pattern!r}")
    if depth:
        raise ValidationError(f"line {opt.line}: malformed glob pattern {pattern!r}")


def _metadata(values: list[tuple[UnitOption, str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: dict[str, list[str]] = {}
    for opt, pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value or "=" in value:
            raise ValidationError(
                f"line {opt.line}: {opt.name}={pair!r} is not key=value",
                hint='write MachineMetadata=region=us-east or MachineMetadata="a=b" "c=d"',
            )
        if value not in out.setdefault(key, []):
            out[key].append(value)
    return tuple(sorted((k, tuple(v)) for k, v in out.items()))


def _last(values: list[tuple[UnitOption, str]],
          parse: Callable[[str, UnitOption], N]) -> N | Literal[0]:
    # systemd: the last assignment wins; an empty one resets to "nothing reserved".
    if not values or not values[-1][1]:
        return 0
    opt, text = values[-1]
    return parse(text, opt)


def _global(values: list[tuple[UnitOption, str]]) -> bool:
    if not values:
        return False
    opt, last = values[-1]
    low = last.lower()
    if low not in _TRUE + _FALSE:
        raise ValidationError(f"line {opt.line}: Global={last!r} is not a boolean",
                              hint="use Global=true or Global=false")
    return low in _TRUE


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Go's path.Match negates a class with "^"; fnmatch with "!".
    return re.compile(fnmatch.translate(pattern.replace("[^", "[!")))


def glob_match(pattern: str, name: str) -> bool:
    """Go ``path.Match`` for unit names (no ``/`` in them, so fnmatch agrees with it)."""
    return _compiled(pattern).match(name) is not None


@functools.lru_cache(maxsize=4096)
def _union(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_compiled(p).pattern})" for p in patterns))


def any_match(patterns: tuple[str, ...], name: str) -> bool:
    """:func:`glob_match` of any of ``patterns`` (one compiled expression per tuple: the
    scheduler asks this for every unit it meets on a machine)."""
    return bool(patterns) and _union(patterns).match(name) is not None


#: fleet's ``ValidateOptions`` refusals (``api/units.go``, in its order), plus ``Global`` with
#: ``Conflicts``: (first key, second key, why the pair cannot be honoured).
REFUSED_PAIRS = (
    ("MachineID", "MachineOf", "MachineID pins the unit to one machine, MachineOf to wherever "
     "its peer runs"),
    ("MachineID", "Conflicts", "a unit pinned to one machine cannot move away from a unit it "
     "conflicts with"),
    ("MachineID", "Global", "a Global unit runs on every machine, MachineID pins it to one"),
    ("MachineID", "Replaces", "Replaces has the scheduler choose a machine and move the replaced "
     "units off it; MachineID leaves it no choice"),
    ("Global", "MachineOf", "a Global unit runs on every machine, MachineOf ties it to its "
     "peer's"),
    ("Global", "Replaces", "a Global unit runs on every machine: there is none left to move the "
     "replaced units to"),
    ("Global", "Conflicts", "a Global unit runs on every machine, so it would meet the units it "
     "conflicts with (fleet 1.0 skips those machines; Shipmate refuses the pair)"),
    ("Conflicts", "Replaces", "Replaces moves the matching units away, Conflicts has this unit "
     "wait for them to go: fleet refuses the two together"),
)


def _present(reqs: Requirements, key: str) -> bool:
    return bool({"MachineID": reqs.machine_id, "MachineOf": reqs.machine_of,
                 "Conflicts": reqs.conflicts, "Replaces": reqs.replaces,
                 "Global": reqs.global_}[key])


def check_combinations(reqs: Requirements) -> None:
    """fleet's ``ValidateOptions``: refuse requirements that can never be satisfied, saying
    why (:data:`REFUSED_PAIRS`)."""
    for peer in reqs.machine_of:
        for key, patterns, why in (
                ("Conflicts", reqs.conflicts, "it may not share a machine with that peer"),
                ("Replaces", reqs.replaces, "it would push that peer off the machine it needs")):
            for pattern in patterns:
                if glob_match(pattern, peer):
                    raise ValidationError(
                        f"unresolvable requirements: MachineOf {peer!r} matches {key} "
                        f"{pattern!r}: {why}", hint=f"drop the peer from {key}=")
    for first, second, why in REFUSED_PAIRS:
        if _present(reqs, first) and _present(reqs, second):
            raise ValidationError(f"{first} cannot be used with {second}: {why}",
                                  hint=f"keep {first}= or {second}= in [X-Fleet], not both "
                                  "(docs/units.md)")
