"""Chef recipes -> manifest: ``docker_image`` and ``docker_container`` resources (the docker
cookbook's common properties). Pure: text in, :class:`ImportResult` out.

Only literal property values are read; Ruby code (variables, conditionals, loops, other
resources) is listed as not translated, with its line.
"""

from __future__ import annotations

from typing import Any

from shipmate.errors import ValidationError
from shipmate.importers.common import ImportResult, Reader, Token, Unknown, tokenize
from shipmate.importers.translate import translate_container, translate_image

_OPENERS = {"if", "unless", "case", "begin", "while", "until", "def", "class", "module", "for"}
_CONTINUE = {",", "=>", "(", "[", "{", "\\", "+", "|", "&"}
# Chef property -> canonical property (see shipmate.importers.translate).
CONTAINER_PROPS = {
    "port": "ports", "ports": "ports", "env": "env", "env_file": "env_file",
    "volumes": "volumes", "volume": "volumes", "binds": "volumes", "command": "command",
    "entrypoint": "entrypoint", "restart_policy": "restart", "detach": "detach",
    "working_dir": "working_dir", "user": "user", "hostname": "hostname",
    "network_mode": "network", "labels": "labels", "depends_on": "depends_on",
}
_RUN_ACTIONS = {"run", "create", "start", "run_if_missing"}


def translate(text: str, source: str, name: str) -> ImportResult:
    """Translate the recipe ``text`` (from file ``source``) into manifest ``name``."""
    result = ImportResult(name=name, source=source)
    try:
        for stmt in statements(tokenize(text)):
            _top(result, stmt)
    except IndexError as exc:
        raise ValidationError(f"{source}: could not parse the recipe (unbalanced brackets or "
                              "blocks?)", hint="check that every do has its end") from exc
    return result


def statements(tokens: list[Token]) -> list[list[Token]]:
    """Split tokens into statements: newlines end one unless inside brackets, a ``do ... end``
    or ``if ... end`` block, or after a token that continues the line."""
    out: list[list[Token]] = []
    cur: list[Token] = []
    brackets = blocks = 0
    for tok in tokens:
        if tok.kind == "nl" or tok.text == ";":
            if brackets == 0 and blocks == 0 and (not cur or cur[-1].text not in _CONTINUE):
                if cur:
                    out.append(cur)
                cur = []
            elif blocks:
                cur.append(tok)
            continue
        if tok.text in ("(", "[", "{"):
            brackets += 1
        elif tok.text in (")", "]", "}"):
            brackets -= 1
        elif tok.kind == "word" and (tok.text == "do" or (tok.text in _OPENERS and (
                not cur or cur[-1].kind == "nl"))):
            blocks += 1
        elif tok.kind == "word" and tok.text == "end":
            blocks -= 1
        cur.append(tok)
    if cur:
        out.append(cur)
    return out


def _top(result: ImportResult, stmt: list[Token]) -> None:
    head = stmt[0]
    title = _title(stmt)
    if head.text not in ("docker_container", "docker_image") or title is None:
        what = f"{head.text} {stmt[1].text}" if len(stmt) > 1 and title is not None \
            else head.text
        result.note(head.line, f"{what} is not a docker resource; not translated")
        return
    props = _properties(result, head.text, title, _body(stmt))
    if head.text == "docker_image":
        _image(result, title, head.line, props)
    else:
        _container(result, title, head.line, props)


def _title(stmt: list[Token]) -> str | None:
    if len(stmt) < 2 or stmt[1].kind != "str":
        return None
    value = Reader([stmt[1]]).value()
    return value if isinstance(value, str) else None


def _body(stmt: list[Token]) -> list[Token]:
    """The tokens between ``do`` and the final ``end`` (empty for a resource without block)."""
    if len(stmt) > 2 and stmt[2].text == "do" and stmt[-1].text == "end":
        return stmt[3:-1]
    return []


def _properties(result: ImportResult, kind: str, title: str,
                body: list[Token]) -> dict[str, tuple[Any, int]]:
    props: dict[str, tuple[Any, int]] = {}
    for stmt in statements(body):
        head = stmt[0]
        args = stmt[1:]
        if args and args[0].text == "(" and args[-1].text == ")":
            args = args[1:-1]
        if head.kind != "word" or head.text in _OPENERS or not args:
            result.note(head.line, f"{kind} {title}: Ruby code "
                        f"`{' '.join(t.text for t in stmt if t.kind != 'nl')[:60]}` "
                        "is not translated")
            continue
        reader = Reader(args)
        value = reader.value()
        if reader.pos < len(args):  # more than one literal: an expression
            value = Unknown(" ".join(t.text for t in args))
        props[head.text] = (value, head.line)
    return props


def _image(result: ImportResult, title: str, line: int, props: dict[str, tuple[Any, int]]) -> None:
    repo = props.pop("repo", (title, line))[0]
    tag = props.pop("tag", ("latest", line))[0]
    source = props.pop("source", (None, line))[0]
    action = props.pop("action", (None, line))
    for key, (_, at) in props.items():
        result.note(at, f"docker_image {title}: {key} is not translated")
    ref = f"{repo}:{tag}" if isinstance(repo, str) else title
    is_tar = isinstance(source, str) and source.endswith((".tar", ".tar.gz", ".tgz"))
    if action[0] in ("remove", "delete"):
        result.note(action[1], f"docker_image {title}: action :{action[0]} is not translated")
        return
    translate_image(result, ref, line, build=None if is_tar else source,
                    tar=source if is_tar else None)


def _container(result: ImportResult, title: str, line: int,
               props: dict[str, tuple[Any, int]]) -> None:
    name = props.pop("container_name", (title, line))[0]
    repo, at = props.pop("repo", props.pop("image", (title, line)))
    tag = props.pop("tag", (None, at))[0]
    action, action_line = props.pop("action", ("run", line))
    actions = action if isinstance(action, list) else [action]
    if not all(a in _RUN_ACTIONS for a in actions):
        result.note(action_line, f"docker_container {title}: action {action!r} is not "
                    "translated (a manifest declares running containers)")
    if isinstance(repo, Unknown) or not isinstance(repo, str):
        result.note(at, f"docker_container {title}: image {repo!r} is not a literal")
        return
    last = repo.rsplit("/", 1)[-1]
    image = repo if ":" in last and tag is None else f"{repo}:{tag if tag else 'latest'}"
    canonical: dict[str, tuple[Any, int]] = {}
    for key, (value, at) in props.items():
        target = CONTAINER_PROPS.get(key, key)
        if target == "volumes" and "volumes" in canonical:
            merged = [*_as_list(canonical["volumes"][0]), *_as_list(value)]
            canonical["volumes"] = (merged, at)
        else:
            canonical[target] = (value, at)
    translate_container(result, str(name), image, line, canonical)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]
