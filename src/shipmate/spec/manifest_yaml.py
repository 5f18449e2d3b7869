"""Typed reading of YAML nodes, so every refusal names ``file:line``.

PyYAML's ``compose`` gives nodes that remember where they started. We read values from the
nodes ourselves instead of ``safe_load``-ing them, for three reasons: errors name the line,
duplicate keys are refused (plain YAML keeps the last one silently), and YAML 1.1's
``no``/``on`` booleans cannot sneak into a string field (``restart: no`` stays ``"no"``).
"""

from __future__ import annotations

import re

import yaml

from shipmate.errors import ValidationError

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAX_DEPTH = 64
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Source:
    """The file a manifest came from, for ``file:line`` in messages."""

    def __init__(self, path: str) -> None:
        self.path = path

    def where(self, node: yaml.Node) -> str:
        """``path:line`` (1-based) of ``node``."""
        return f"{self.path}:{node.start_mark.line + 1}"

    def error(self, node: yaml.Node, message: str, hint: str | None = None) -> ValidationError:
        """A ValidationError prefixed with where ``node`` is."""
        return ValidationError(f"{self.where(node)}: {message}", hint=hint)

    def compose(self, text: str) -> yaml.Node:
        """Parse ``text`` into a node tree; syntax errors name the line."""
        try:
            self._check_depth(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ValidationError(
                f"{self.path}{line}: invalid YAML: {exc.problem or exc.context}",
                hint="check indentation and quoting on that line",
            ) from exc
        except yaml.YAMLError as exc:
            raise ValidationError(f"{self.path}: invalid YAML: {exc}") from exc
        if node is None:
            raise ValidationError(f"{self.path}: the manifest is empty",
                                  hint="declare at least `containers:`")
        return node

    def _check_depth(self, text: str) -> None:
        # PyYAML's composer recurses once per level: a few thousand `[` would end in a
        # RecursionError. Its parser does not, so the depth is checked on the events first.
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = f":{event.start_mark.line + 1}" if event.start_mark else ""
                    raise ValidationError(
                        f"{self.path}{line}: nested more than {MAX_DEPTH} levels deep",
                        hint="a manifest needs a handful of levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1

    # -- typed readers -------------------------------------------------------------------

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key text, as (key node, value node); duplicates refused."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, got {kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag not in (STR, INT):
                raise self.error(key, f"{what}: keys must be strings, got {kind(key)}")
            if key.value in out:
                first = self.where(out[key.value][0])
                raise self.error(key, f"{what}: duplicate key {key.value!r} (first at {first})")
            out[key.value] = (key, value)
        return out

    def fields(
        self, node: yaml.Node, what: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Like :meth:`mapping`, refusing keys outside ``allowed``."""
        entries = self.mapping(node, what)
        for name, (key, _) in entries.items():
            if name not in allowed:
                raise self.error(
                    key, f"{what}: unknown key {name!r}", hint="known keys: " + ", ".join(allowed)
                )
        return entries

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        """A sequence's items."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list, got {kind(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str:
        """A string (numbers are refused: quote them if a string is meant)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != STR:
            raise self.error(node, f"{what} must be a string, got {kind(node)}")
        return str(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        """A string, an integer or a decimal, as written (env values, ports)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (STR, INT, FLOAT):
            raise self.error(node, f"{what} must be a string or a number, got {kind(node)}",
                             hint="quote it, e.g. \"yes\"" if node.tag == BOOL else None)
        return str(node.value)

    def word(self, node: yaml.Node, what: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``, taken as written (so ``no`` is not a boolean here)."""
        if not isinstance(node, yaml.ScalarNode) or node.value not in choices:
            got = repr(node.value) if isinstance(node, yaml.ScalarNode) else kind(node)
            raise self.error(node, f"{what} must be one of {', '.join(choices)}, got {got}")
        return str(node.value)

    def integer(self, node: yaml.Node, what: str) -> int:
        """A whole number."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT:
            raise self.error(node, f"{what} must be an integer, got {kind(node)}")
        return int(str(node.value).replace("_", ""), 0)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        """true or false."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL:
            raise self.error(node, f"{what} must be true or false, got {kind(node)}")
        return str(node.value).lower() in ("true", "yes", "on", "y")

    def duration(self, node: yaml.Node, what: str) -> float:
        """Seconds, as a number or ``500ms``, ``2s``, ``1m``, ``1h``."""
        raw = node.value if isinstance(node, yaml.ScalarNode) and node.tag != BOOL else None
        match = _DURATION.fullmatch(str(raw)) if raw is not None else None
        if match is None:
            raise self.error(node, f"{what} must be a duration (e.g. 2, 2s, 500ms, 1m)")
        return float(match.group(1)) * _UNITS[match.group(2)]

    def strings(self, node: yaml.Node, what: str) -> list[str]:
        """A list of strings (numbers allowed, as written: a command may say ``sleep 5``)."""
        return [self.text(item, f"{what} item") for item in self.sequence(node, what)]

    def str_map(self, node: yaml.Node, what: str) -> dict[str, str]:
        """A mapping of names to string (or number) values."""
        return {k: self.text(v, f"{what} {k}") for k, (_, v) in self.mapping(node, what).items()}


def kind(node: yaml.Node) -> str:
    """A user-facing name for what a node holds."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    names = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "a boolean",
             NULL: "nothing (null)"}
    return names.get(node.tag, str(node.tag))

