"""Container and image properties, once both tools' names are mapped to ours. Pure.

Each importer maps its property names to the canonical ones below (``Chef port`` and
``Puppet ports`` both become ``ports``); this module turns canonical properties into manifest
entries and notes every value or property it cannot carry over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shipmate.importers.common import (
    ImportResult,
    Unknown,
    as_list,
    command_value,
    container_name,
    env_pairs,
)

Props = Mapping[str, tuple[Any, int]]  # canonical name -> (value, line)
RESTARTS = ("no", "always", "unless-stopped", "on-failure")
_PLAIN = ("working_dir", "user", "hostname", "network", "env_file")


def translate_container(result: ImportResult, title: str, image: str, line: int,
                        props: Props) -> None:
    """Add container ``title`` (running ``image``) to ``result``."""
    name = container_name(title)
    if name != title:
        result.note(line, f"container name {title!r} became {name!r}")
    out: dict[str, Any] = {"image": image}
    for key, (value, at) in props.items():
        if isinstance(value, Unknown):
            result.note(at, f"{title}: {key} = {value.text} is not a literal value")
            continue
        handler = _HANDLERS.get(key)
        if handler is None:
            result.note(at, f"{title}: {key} is not translated")
            continue
        handler(result, title, value, at, out)
    result.containers[name] = out


def _command(key: str) -> Callable[[ImportResult, str, Any, int, dict[str, Any]], None]:
    def handle(result: ImportResult, title: str, value: Any, at: int,
               out: dict[str, Any]) -> None:
        cmd = command_value(value)
        if cmd is None:
            result.note(at, f"{title}: {key} {value!r} is not a command line")
        else:
            out[key] = cmd
    return handle


def _ports(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    for item in as_list(value):
        if isinstance(item, str | int) and not isinstance(item, bool):
            out.setdefault("ports", []).append(str(item))
        else:
            result.note(at, f"{title}: port {item!r} is not translated")


def _env(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    for pair in env_pairs(value):
        if isinstance(pair, Unknown):
            result.note(at, f"{title}: env entry {pair.text} is not KEY=VALUE")
        else:
            out.setdefault("env", {})[pair[0]] = pair[1]


def _volumes(result: ImportResult, title: str, value: Any, at: int,
             out: dict[str, Any]) -> None:
    for item in as_list(value):
        if isinstance(item, str) and ":" in item:
            out.setdefault("volumes", []).append(item)
        else:
            result.note(at, f"{title}: volume {item!r} has no host side (anonymous volumes "
                        "are not translated; give it SOURCE:TARGET)")


def _restart(result: ImportResult, title: str, value: Any, at: int,
             out: dict[str, Any]) -> None:
    policy = str(value).split(":", 1)[0]
    if policy in RESTARTS:
        out["restart"] = policy
        if ":" in str(value):
            result.note(at, f"{title}: restart retry count in {value!r} is not translated")
    else:
        result.note(at, f"{title}: restart policy {value!r} is not translated")


def _labels(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    pairs = env_pairs(value)
    for pair in pairs:
        if isinstance(pair, Unknown):
            result.note(at, f"{title}: label {pair.text} is not translated")
        else:
            out.setdefault("labels", {})[pair[0]] = pair[1]


def _depends(result: ImportResult, title: str, value: Any, at: int,
             out: dict[str, Any]) -> None:
    out["depends_on"] = [container_name(str(v)) for v in as_list(value)]


def _detach(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    if value is False:
        result.note(at, f"{title}: detach false (run in the foreground) is not translated: "
                    "manifest containers always run detached")


def _plain(key: str) -> Callable[[ImportResult, str, Any, int, dict[str, Any]], None]:
    def handle(result: ImportResult, title: str, value: Any, at: int,
               out: dict[str, Any]) -> None:
        if isinstance(value, str | int) and not isinstance(value, bool):
            out[key] = str(value)
        else:
            result.note(at, f"{title}: {key} {value!r} is not translated")
    return handle


def _health(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    if isinstance(value, str):
        out.setdefault("health", {})["test"] = value
    else:
        result.note(at, f"{title}: health check {value!r} is not translated")


def _ignore(result: ImportResult, title: str, value: Any, at: int, out: dict[str, Any]) -> None:
    """Properties that need no translation (the manifest always means "running")."""


_HANDLERS: dict[str, Callable[[ImportResult, str, Any, int, dict[str, Any]], None]] = {
    "command": _command("command"), "entrypoint": _command("entrypoint"), "ports": _ports,
    "env": _env, "volumes": _volumes, "restart": _restart, "labels": _labels,
    "depends_on": _depends, "detach": _detach, "health": _health, "ignore": _ignore,
    **{k: _plain(k) for k in _PLAIN},
}


def translate_image(result: ImportResult, tag: str, line: int, *, build: Any = None,
                    dockerfile: Any = None, tar: Any = None) -> None:
    """Add an image: built from a context, imported from a tar, or (neither) expected to
    exist already (no registry to pull from)."""
    if isinstance(build, str):
        entry: dict[str, Any] = {"tag": tag, "build": build}
        if isinstance(dockerfile, str):
            entry["dockerfile"] = dockerfile
        result.images.append(entry)
    elif isinstance(tar, str):
        result.images.append({"tag": tag, "import": tar})
    elif tag.startswith("shipmate/"):
        result.images.append({"tag": tag, "bootstrap": True})
    else:
        result.note(line, f"image {tag}: pulling is not translated (no registry here); it must "
                    "exist on the engine, or declare how to build or import it")
