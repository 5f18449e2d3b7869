"""What the Chef and Puppet importers share: a small tokenizer for Ruby/Puppet literals, the
result type, and the property translations both tools have in common. Pure.

The importers read the *declarative* subset (resources whose properties are literals). Anything
else (variables, interpolation, conditionals, properties without a Shipmate meaning) is listed
in :attr:`ImportResult.untranslated` with its line, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterator
from typing import Any

import yaml

_TOKEN = re.compile(r"""
    (?P<nl>\n) | (?P<ws>[ \t\r]+|\\\n) | (?P<comment>\#[^\n]*)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<arrow>=>) | (?P<sym>:[A-Za-z_][A-Za-z0-9_]*[?!]?)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<var>\$[A-Za-z_:][A-Za-z0-9_:]*|@[A-Za-z_]\w*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*[?!]?)
  | (?P<punct>[\[\]{}(),:;=|.<>!+*/&%-])
""", re.VERBOSE)


@dataclasses.dataclass(frozen=True)
class Token:
    """One token: kind (str, word, sym, num, var, punct, arrow, nl) and text."""

    kind: str
    text: str
    line: int


class Unknown:
    """A value the importer cannot evaluate (a variable, an expression, interpolation)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def tokenize(text: str) -> list[Token]:
    """Tokens of Ruby/Puppet source, comments and blanks dropped (newlines kept)."""
    out: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            out.append(Token("punct", text[pos], line))
            pos += 1
            continue
        kind = m.lastgroup or "punct"
        if kind not in ("ws", "comment"):
            out.append(Token(kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return out


def unquote(token: Token) -> str | Unknown:
    """A string literal's value; interpolated double-quoted strings are :class:`Unknown`."""
    body = token.text[1:-1]
    if token.text[0] == "'":
        return body.replace("\\'", "'").replace("\\\\", "\\")
    if "#{" in body or "${" in body or re.search(r"(?<!\\)\$[A-Za-z_]", body):
        return Unknown(token.text)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


class Reader:
    """A cursor over tokens with a literal-value parser."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        """The token ``offset`` ahead, or None at the end."""
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def next(self) -> Token:
        """Consume one token (the end raises IndexError)."""
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def skip_newlines(self) -> None:
        """Skip newline and ``;`` tokens."""
        while (t := self.peek()) is not None and (t.kind == "nl" or t.text == ";"):
            self.pos += 1

    def value(self) -> Any:
        """A literal: string, number, bool, nil/undef, symbol, array or hash; else Unknown
        spanning the rest of the expression."""
        self.skip_newlines()
        tok = self.next()
        if tok.kind == "str":
            return unquote(tok)
        if tok.kind == "num":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "sym":
            return tok.text[1:]
        if tok.kind == "word" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.kind == "word" and tok.text in ("nil", "undef"):
            return None
        if tok.text == "[":
            return self._array()
        if tok.text == "{":
            return self._hash()
        return Unknown(tok.text)

    def _array(self) -> Any:
        items: list[Any] = []
        while True:
            self.skip_newlines()
            if (t := self.peek()) is not None and t.text == "]":
                self.pos += 1
                return items
            items.append(self.value())
            self.skip_newlines()
            if (t := self.peek()) is not None and t.text == ",":
                self.pos += 1

    def _hash(self) -> Any:
        items: dict[str, Any] = {}
        while True:
            self.skip_newlines()
            if (t := self.peek()) is not None and t.text == "}":
                self.pos += 1
                return items
            key = self.value()
            self.skip_newlines()
            sep = self.peek()
            if sep is not None and (sep.kind == "arrow" or sep.text == ":"):
                self.pos += 1
            items[str(key)] = self.value()
            self.skip_newlines()
            if (t := self.peek()) is not None and t.text == ",":
                self.pos += 1


@dataclasses.dataclass
class ImportResult:
    """A translated manifest and the list of what could not be translated."""

    name: str
    source: str
    images: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    containers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    untranslated: list[str] = dataclasses.field(default_factory=list)

    def note(self, line: int, what: str) -> None:
        """Record something not translated, with its source line."""
        self.untranslated.append(f"{self.source}:{line}: {what}")

    def manifest(self) -> dict[str, Any]:
        """The manifest as a plain mapping."""
        out: dict[str, Any] = {"name": self.name}
        if self.images:
            out["images"] = self.images
        out["containers"] = self.containers
        return out

    def render(self) -> str:
        """Manifest YAML, headed by comments listing what was not translated."""
        head = [f"# Translated from {self.source} by `shipmate import`."]
        if self.untranslated:
            head.append("# NOT translated (review these by hand):")
            head += [f"#   {n}" for n in self.untranslated]
        body = yaml.safe_dump(self.manifest(), sort_keys=False, default_flow_style=False)
        return "\n".join(head) + "\n" + body


def as_list(value: Any) -> list[Any]:
    """A scalar or a list, as a list."""
    return list(value) if isinstance(value, list) else [value]


def env_pairs(value: Any) -> Iterator[tuple[str, str] | Unknown]:
    """``"K=V"`` items (or a hash) as pairs."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (str(k), str(v)) if not isinstance(v, Unknown) else v
        return
    for item in as_list(value):
        if isinstance(item, str) and "=" in item:
            key, _, val = item.partition("=")
            yield key, val
        else:
            yield Unknown(repr(item))


def command_value(value: Any) -> list[str] | str | None:
    """A command as the manifest takes it: a list, or a string it will split like a shell."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    if isinstance(value, str):
        try:
            shlex.split(value)
        except ValueError:
            return None
        return value
    return None


def image_ref(repo: str, tag: Any) -> str:
    """``repo:tag`` (``latest`` when no tag)."""
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        return repo
    return f"{repo}:{tag if isinstance(tag, str | int) and tag != '' else 'latest'}"


def container_name(title: str) -> str:
    """A Docker-acceptable container name from a resource title."""
    name = re.sub(r"[^a-zA-Z0-9_.-]+", "-", title).strip("-.")
    return name or "container"
