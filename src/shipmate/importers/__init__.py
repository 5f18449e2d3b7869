"""Importers: Chef recipes and Puppet manifests -> Shipmate manifests.

``translate_file("chef", "recipe.rb")`` returns an :class:`ImportResult` whose ``render()``
is manifest YAML; ``untranslated`` lists, with lines, what had no translation.
"""

from __future__ import annotations

from pathlib import Path

from shipmate.errors import ValidationError
from shipmate.importers import chef, puppet
from shipmate.importers.common import ImportResult, container_name

__all__ = ["ImportResult", "translate_file", "translate_text"]


def translate_text(kind: str, text: str, source: str, name: str) -> ImportResult:
    """Translate ``text`` (``kind``: chef or puppet) into manifest ``name``."""
    if kind == "chef":
        return chef.translate(text, source, name)
    if kind == "puppet":
        return puppet.translate(text, source, name)
    raise ValidationError(f"unknown importer {kind!r}", hint="use chef or puppet")


def translate_file(kind: str, path: str, name: str | None = None) -> ImportResult:
    """Read and translate the file at ``path``; the manifest is named after it by default."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    default = container_name(p.stem.lower().replace("_", "-")).strip(".-_") or "imported"
    return translate_text(kind, text, p.name, name or default)
