"""Unit file syntax: parse into ordered options, serialize, hash (pure).

The grammar is systemd's as fleet read it (go-systemd's ``unit.Deserialize``): ``[Section]``
headers; ``Name=Value`` options kept in file order, repeated names included; comment lines
starting with ``#`` or ``;``; a trailing backslash continues a value on the next line (for
running, the pieces are joined with one space). Unlike systemd, which logs and skips what it
cannot read, a malformed line is refused with its line number, so a typo never silently drops
an option.

:func:`serialize` writes the options back the way go-systemd's ``unit.Serialize`` did for
fleet: sections in first-seen order, each ``[Section]`` followed by its options, a blank line
between sections, multi-line values as written. :func:`unit_hash` is the SHA-1 of that text,
the hash ``fleetctl list-unit-files`` shows (fleet's own test vector:
``[Service]\\nExecStart=/bin/sleep 100\\n`` -> ``1c6fb6f...``), so two files differing only
in comments, blank lines or spacing around ``=`` hash the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

from shipmate.errors import ValidationError

#: systemd's historical LINE_MAX, which go-systemd enforced for fleet.
MAX_LINE = 2048
#: Refuse absurd inputs before doing any work on them.
MAX_UNIT_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class UnitOption:
    """One ``Name=Value`` assignment. ``line`` is where it started (1-based; 0 if built).

    ``value`` is what runs: continuation lines joined with spaces."""

    section: str
    name: str
    value: str
    line: int = dataclasses.field(default=0, compare=False)
    #: The value as written when it spans lines (backslash-newlines kept), else None.
    raw: str | None = dataclasses.field(default=None, compare=False)

    @property
    def serialized(self) -> str:
        """The value as fleet serializes it (continuations kept as written)."""
        return self.value if self.raw is None else self.raw


@dataclasses.dataclass(frozen=True)
class UnitFile:
    """A parsed unit file: its options in file order."""

    options: tuple[UnitOption, ...]

    @property
    def sections(self) -> tuple[str, ...]:
        """Section names in first-seen order."""
        return tuple(dict.fromkeys(o.section for o in self.options))

    def values(self, section: str, name: str) -> list[str]:
        """Every value of ``name`` in ``section``, in file order."""
        return [o.value for o in self.options if o.section == section and o.name == name]

    def value(self, section: str, name: str) -> str | None:
        """The last value of ``name`` in ``section`` (systemd: last one wins), or None."""
        found = self.values(section, name)
        return found[-1] if found else None

    def section(self, section: str) -> tuple[UnitOption, ...]:
        """The options of one section, in file order."""
        return tuple(o for o in self.options if o.section == section)

    def serialize(self) -> str:
        """The canonical text (see :func:`serialize`)."""
        return serialize(self.options)

    @property
    def hash(self) -> str:
        """SHA-1 hex digest of the canonical text (see :func:`unit_hash`)."""
        return unit_hash(self)


def _logical_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """Yield ``(first line number, joined line, raw lines)`` for each logical line.

    A trailing backslash continues a line: in the joined form the backslash becomes one space
    and the next line is appended as it is (what systemd runs); the raw form keeps the
    backslash-newlines, which is what fleet serializes and hashes.
    """
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if len(raw.encode()) > MAX_LINE:
            raise ValidationError(f"line {number}: longer than {MAX_LINE} bytes",
                                  hint="split it with a trailing backslash")
        if not pending:
            start = number
        comment = not pending and raw.lstrip().startswith(("#", ";"))
        pending.append(raw)
        if raw.endswith("\\") and not comment:
            continue
        yield start, _join(pending), "\n".join(pending)
        pending = []
    if pending:
        yield start, _join(pending), "\n".join(pending)


def _join(lines: list[str]) -> str:
    return "".join(line[:-1] + " " if i < len(lines) - 1 else line
                   for i, line in enumerate(lines)).strip()


def parse(text: str) -> UnitFile:
    """Parse unit file text, or raise :class:`ValidationError` naming the bad line."""
    if len(text) > MAX_UNIT_BYTES:
        raise ValidationError(f"unit file is larger than {MAX_UNIT_BYTES} bytes")
    if "\0" in text:
        raise ValidationError("unit file contains a NUL byte")
    options: list[UnitOption] = []
    section: str | None = None
    for number, line, raw in _logical_lines(text):
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = _section_header(number, line)
            continue
        if section is None:
            raise ValidationError(f"line {number}: assignment outside of any [Section]: {line!r}",
                                  hint="put options under a header such as [Service]")
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep:
            raise ValidationError(f"line {number}: expected Name=Value, got {line!r}")
        if not name or any(c.isspace() for c in name):
            raise ValidationError(f"line {number}: invalid option name {name!r}")
        raw_value = raw.partition("=")[2].strip() if "\n" in raw else None
        options.append(UnitOption(section, name, value.strip(), number, raw_value))
    return UnitFile(tuple(options))


def _section_header(number: int, line: str) -> str:
    end = line.find("]")
    if end == -1:
        raise ValidationError(f"line {number}: unterminated section header {line!r}")
    name = line[1:end].strip()
    garbage = line[end + 1:].strip()
    if garbage:
        raise ValidationError(f"line {number}: garbage after section name [{name}]: {garbage!r}")
    if not name or any(c in name for c in "[]") or name != line[1:end]:
        raise ValidationError(f"line {number}: invalid section name {line[: end + 1]!r}")
    return name


def serialize(options: tuple[UnitOption, ...] | list[UnitOption]) -> str:
    """go-systemd's ``Serialize``: options grouped by section in first-seen order."""
    grouped: dict[str, list[UnitOption]] = {}
    for opt in options:
        grouped.setdefault(opt.section, []).append(opt)
    parts = []
    for section, opts in grouped.items():
        body = "".join(f"{o.name}={o.serialized}\n" for o in opts)
        parts.append(f"[{section}]\n{body}")
    return "\n".join(parts)


def unit_hash(unit: UnitFile) -> str:
    """fleet's ``UnitFile.Hash``: SHA-1 of the serialized options, as 40 hex digits."""
    return hashlib.sha1(unit.serialize().encode()).hexdigest()  # noqa: S324 - fleet's hash
