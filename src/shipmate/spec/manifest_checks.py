"""Whole-manifest checks: host-port clashes, ``depends_on`` graph. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import yaml

from shipmate.errors import ValidationError
from shipmate.spec.container import PortMapping
from shipmate.spec.manifest_yaml import Source

if TYPE_CHECKING:
    from shipmate.spec.manifest import ContainerDecl

_ANY = ("", "0.0.0.0", "::")  # wildcard binds: they overlap every address


def ports_clash(a: PortMapping, b: PortMapping) -> bool:
    """True when two host bindings cannot coexist (same fixed port and protocol, and the
    addresses overlap: equal, or either is a wildcard)."""
    if a.host_port == 0 or b.host_port == 0:
        return False
    if a.host_port != b.host_port or a.protocol != b.protocol:
        return False
    return a.host_ip == b.host_ip or a.host_ip in _ANY or b.host_ip in _ANY


def check_host_ports(decls: Sequence[ContainerDecl]) -> None:
    """Refuse two declared bindings of the same host port (within or across containers)."""
    seen: list[tuple[PortMapping, str, str]] = []
    for decl in decls:
        for port, where in zip(decl.spec.ports, decl.port_where, strict=True):
            for other, other_where, other_name in seen:
                if ports_clash(port, other):
                    raise ValidationError(
                        f"{where}: host port {port.host_port}/{port.protocol} of {decl.name} "
                        f"is also bound by {other_name} at {other_where}",
                        hint="give each container its own host port (or 0 to let the engine pick)",
                    )
            seen.append((port, where, decl.name))


def check_depends_on(
    src: Source,
    entries: Mapping[str, tuple[yaml.Node, yaml.Node]],
    depends: Mapping[str, tuple[str, ...]],
) -> list[str]:
    """Refuse unknown names and cycles; return the names with dependencies first (ties in
    declaration order)."""
    for name, deps in depends.items():
        for dep in deps:
            if dep not in depends:
                raise src.error(entries[name][0], f"container {name} depends on {dep!r}, "
                                "which is not declared")
            if dep == name:
                raise src.error(entries[name][0], f"container {name} depends on itself")
    try:
        return toposort(list(depends), depends)
    except CycleError as exc:
        first = exc.cycle[0]
        raise src.error(entries[first][0], "depends_on cycle: " + " -> ".join(exc.cycle),
                        hint="remove one of these dependencies") from exc


class CycleError(Exception):
    """A dependency cycle (the names, first repeated at the end)."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


def toposort(names: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Order ``names`` so each comes after what it depends on; stable (ties keep the given
    order). Dependencies outside ``names`` are ignored. Raises :class:`CycleError`."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    wanted = set(names)

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise CycleError([*path[path.index(name):], name])
        state[name] = 1
        for dep in depends.get(name, ()):
            if dep in wanted:
                visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in names:
        visit(name, [])
    return order
