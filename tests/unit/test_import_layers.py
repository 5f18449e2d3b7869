"""Dependencies between Shipmate's packages point down (DESIGN.md, "Layout"):

    cli -> daemon -> (paas, agent, router, scheduler, cache, services, web, cluster, importers)
        -> (converge, store, engine, spec, testing)
        -> (errors, config, clock, cronspec, netaddr, httpapi, metrics)

Every import counts, function-local ones and ``TYPE_CHECKING`` ones too: a lazy import is
still a dependency. Imports within one layer are allowed, cycles are not.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import shipmate

ROOT = Path(shipmate.__file__).parent
ROOT_NAME = "shipmate"  # the package's own __init__ (``from shipmate import __version__``)

LAYERS: dict[str, int] = {
    "cli": 5,
    "daemon": 4,
    **dict.fromkeys(("paas", "agent", "router", "scheduler", "cache", "services", "web",
                     "cluster", "importers", "backup"), 3),
    **dict.fromkeys(("converge", "store", "engine", "spec", "testing"), 2),
    **dict.fromkeys((ROOT_NAME, "errors", "config", "clock", "cronspec", "netaddr", "httpapi",
                     "metrics"), 1),
}


def _unit_of(path: Path) -> str:
    """The top-level package (or top-level module) a file belongs to."""
    rel = path.relative_to(ROOT)
    return ROOT_NAME if rel.parts == ("__init__.py",) else rel.parts[0].removesuffix(".py")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [ROOT_NAME, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split(".")[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _targets(path: Path) -> Iterator[str]:
    """Dotted names of the shipmate modules ``path`` imports, anywhere in the file."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # ``from shipmate import config`` names a module
                sub = f"{base}.{alias.name}"
                yield sub if _is_module(sub) else base


def _unit_of_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != ROOT_NAME:
        return None
    return parts[1] if len(parts) > 1 else ROOT_NAME


def package_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        unit = _unit_of(path)
        graph.setdefault(unit, {})
        for target in _targets(path):
            other = _unit_of_module(target)
            if other is not None and other != unit:
                graph[unit].setdefault(other, set()).add(str(path.relative_to(ROOT)))
    return graph


def _cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of the graph as a path of units, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = 1
        stack.append(unit)
        for other in sorted(graph.get(unit, {})):
            if state.get(other) == 1:
                return [*stack[stack.index(other):], other]
            if other not in state and (found := visit(other)):
                return found
        stack.pop()
        state[unit] = 2
        return None

    for unit in sorted(graph):
        if unit not in state and (found := visit(unit)):
            return found
    return None


def test_every_unit_has_a_layer() -> None:
    unknown = sorted(set(package_graph()) - set(LAYERS))
    assert not unknown, f"add these to LAYERS (and DESIGN.md's layout): {unknown}"


def test_no_cycle_between_packages() -> None:
    graph = package_graph()
    cycle = _cycle(graph)
    if cycle:
        edges = [f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})"
                 for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle between packages:\n  " + "\n  ".join(edges))


def test_dependencies_point_down() -> None:
    graph = package_graph()
    upward = [f"{unit} (layer {LAYERS[unit]}) imports {other} (layer {LAYERS[other]}) in "
              f"{', '.join(sorted(files))}"
              for unit, deps in sorted(graph.items()) if unit in LAYERS
              for other, files in sorted(deps.items())
              if other in LAYERS and LAYERS[other] > LAYERS[unit]]
    assert not upward, "imports that point up:\n  " + "\n  ".join(upward)


def test_the_walk_sees_function_local_imports() -> None:
    """The checker itself: imports inside functions count."""
    graph = package_graph()
    # daemon/wiring.py imports the subsystems inside its functions only.
    assert "paas" in graph["daemon"]
    assert "router" in graph["daemon"]
