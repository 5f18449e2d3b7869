"""Puppet manifests -> manifest: ``docker::image`` and ``docker::run`` resources (the docker
module's common parameters). Pure: text in, :class:`ImportResult` out.

Only literal parameter values are read; variables, conditionals and other resources are listed
as not translated, with their line.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from shipmate.errors import ValidationError
from shipmate.importers.common import ImportResult, Reader, Token, Unknown, tokenize
from shipmate.importers.translate import translate_container, translate_image

# Puppet parameter -> canonical property (see shipmate.importers.translate).
RUN_PARAMS = {
    "command": "command", "ports": "ports", "volumes": "volumes", "env": "env",
    "env_file": "env_file", "restart": "restart", "depends": "depends_on",
    "hostname": "hostname", "username": "user", "net": "network", "labels": "labels",
    "detach": "detach", "health_check_cmd": "health", "entrypoint": "entrypoint",
    "working_dir": "working_dir", "restart_service": "ignore", "pull_on_start": "ignore",
}


def translate(text: str, source: str, name: str) -> ImportResult:
    """Translate the Puppet ``text`` (from file ``source``) into manifest ``name``."""
    result = ImportResult(name=name, source=source)
    reader = Reader([t for t in tokenize(text) if t.kind != "nl"])
    try:
        while reader.peek() is not None:
            _statement(result, reader)
    except IndexError as exc:
        raise ValidationError(f"{source}: could not parse the manifest (unbalanced braces?)",
                              hint="check that every { has its }") from exc
    return result


def _statement(result: ImportResult, reader: Reader) -> None:
    head = reader.next()
    nxt = reader.peek()
    if head.kind == "word" and nxt is not None and nxt.text == "{":
        reader.next()
        _resource(result, reader, head)
        return
    # Anything else (include, class parameters, variables, conditionals): skip one statement,
    # balanced over braces, and say so.
    depth = 1 if head.text == "{" else 0
    while depth > 0 or ((t := reader.peek()) is not None and t.line == head.line
                        and t.text != "}"):
        tok = reader.next()
        depth += {"{": 1, "}": -1}.get(tok.text, 0)
    if head.text != "}":
        result.note(head.line, f"`{head.text}` statement is not translated")


def _resource(result: ImportResult, reader: Reader, head: Token) -> None:
    """``type { 'title': param => value, ...; 'title2': ... }``."""
    while True:
        title_value = reader.value()
        colon = reader.next()
        if colon.text != ":":
            raise IndexError("expected ':' after a resource title")
        params: dict[str, tuple[Any, int]] = {}
        while (t := reader.peek()) is not None and t.text not in ("}", ";"):
            key = reader.next()
            if reader.next().kind != "arrow":
                raise IndexError("expected '=>'")
            params[key.text] = (_param_value(reader), key.line)
            if (t := reader.peek()) is not None and t.text == ",":
                reader.next()
        end = reader.next()
        _dispatch(result, head, title_value, params)
        if end.text == "}":
            return
        if (t := reader.peek()) is not None and t.text == "}":
            reader.next()
            return


def _param_value(reader: Reader) -> Any:
    """A literal, or Unknown for an expression (consumed up to the next ``,`` / ``}``)."""
    start = reader.pos
    value = reader.value()
    while (t := reader.peek()) is not None and t.text not in (",", "}", ";"):
        reader.next()
        value = Unknown(" ".join(tok.text for tok in reader.tokens[start:reader.pos]))
    return value


def _dispatch(result: ImportResult, head: Token, title: Any,
              params: dict[str, tuple[Any, int]]) -> None:
    if not isinstance(title, str):
        result.note(head.line, f"{head.text} with title {title!r} is not translated")
    elif head.text == "docker::run":
        _run(result, title, head.line, params)
    elif head.text == "docker::image":
        _image(result, title, head.line, params)
    else:
        result.note(head.line, f"{head.text} {{ '{title}': }} is not a docker resource; "
                    "not translated")


def _ensure_present(result: ImportResult, what: str, params: dict[str, tuple[Any, int]]) -> bool:
    ensure, at = params.pop("ensure", ("present", 0))
    if ensure in ("present", "running", "latest", True):
        return True
    result.note(at, f"{what}: ensure => {ensure!r} is not translated")
    return False


def _image(result: ImportResult, title: str, line: int, params: dict[str, Any]) -> None:
    if not _ensure_present(result, f"docker::image {title}", params):
        return
    tag = params.pop("image_tag", (None, line))[0]
    dockerfile = params.pop("docker_file", (None, line))[0]
    context = params.pop("docker_dir", (None, line))[0]
    tar = params.pop("docker_tar", (None, line))[0]
    image = params.pop("image", (title, line))[0]
    for key, (_, at) in params.items():
        result.note(at, f"docker::image {title}: {key} is not translated")
    last = str(image).rsplit("/", 1)[-1]
    ref = str(image) if ":" in last and not tag else f"{image}:{tag or 'latest'}"
    if isinstance(dockerfile, str) and not isinstance(context, str):
        context, dockerfile = posixpath.dirname(dockerfile) or ".", \
            posixpath.basename(dockerfile)
    translate_image(result, ref, line, build=context, dockerfile=dockerfile, tar=tar)


def _run(result: ImportResult, title: str, line: int, params: dict[str, Any]) -> None:
    if not _ensure_present(result, f"docker::run {title}", params):
        return
    image, at = params.pop("image", (None, line))
    if not isinstance(image, str):
        result.note(at, f"docker::run {title}: image {image!r} is not a literal; not translated")
        return
    last = image.rsplit("/", 1)[-1]
    ref = image if ":" in last else f"{image}:latest"
    canonical: dict[str, tuple[Any, int]] = {}
    for key, (value, at) in params.items():
        if key == "extra_parameters":
            _extra(result, title, value, at, canonical)
            continue
        if key == "require" and _requires(value, canonical, at):
            continue
        canonical[RUN_PARAMS.get(key, key)] = (value, at)
    translate_container(result, title, ref, line, canonical)


def _extra(result: ImportResult, title: str, value: Any, at: int,
           canonical: dict[str, tuple[Any, int]]) -> None:
    """``extra_parameters``: only ``--restart=POLICY`` has a manifest meaning."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and item.startswith("--restart="):
            canonical["restart"] = (item.split("=", 1)[1], at)
        else:
            result.note(at, f"docker::run {title}: extra parameter {item!r} is not translated")


def _requires(value: Any, canonical: dict[str, tuple[Any, int]], at: int) -> bool:
    """``require => Docker::Run['db']`` becomes depends_on; ``Docker::Image[...]`` needs
    nothing (images are always made first). False: some other reference."""
    text = value.text if isinstance(value, Unknown) else ""
    refs = re.findall(r"(Docker::(?:Run|Image)) \[ '([^']+)' \]", text)
    if not refs or len(refs) != text.count("["):
        return False
    runs = [title for kind, title in refs if kind == "Docker::Run"]
    if runs:
        canonical["depends_on"] = (runs, at)
    return True
