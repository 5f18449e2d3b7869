"""Dokku's output conventions: ``-----> `` steps, ``=====> `` headers, `` !     `` errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO


def step(message: str, out: TextIO | None = None) -> None:
    """A progress step: ``-----> message``."""
    print(f"-----> {message}", file=out or sys.stdout, flush=True)


def header(message: str, out: TextIO | None = None) -> None:
    """A section header: ``=====> message``."""
    print(f"=====> {message}", file=out or sys.stdout, flush=True)


def detail(message: str, out: TextIO | None = None) -> None:
    """An indented detail line under a step."""
    print(f"       {message}", file=out or sys.stdout, flush=True)


def error(message: str, out: TextIO | None = None) -> None:
    """An error on stderr, Dokku style, one `` !     `` prefix per line."""
    for line in message.splitlines() or [""]:
        print(f" !     {line}", file=out or sys.stderr, flush=True)


def as_json(data: Any, out: TextIO | None = None) -> None:
    """Print ``data`` as JSON (for ``--format json``)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str), file=out or sys.stdout)


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    legend: bool = True,
    out: TextIO | None = None,
) -> None:
    """Tab-aligned columns, fleetctl style (upper-case legend unless ``legend`` is False)."""
    cells = [[str(r.get(c, "-")) for c in columns] for r in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines: Iterable[list[str]] = ([c.upper() for c in columns], *cells) if legend else cells
    for row in lines:
        text = "\t".join(v.ljust(w) if i < len(row) - 1 else v
                         for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        print(text, file=out or sys.stdout)


def report(title: str, items: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    """A Dokku ``:report`` block: header then aligned ``Label: value`` lines."""
    header(title, out)
    width = max((len(k) for k, _ in items), default=0) + 1
    for key, value in items:
        print(f"       {(key + ':').ljust(width)} {value}", file=out or sys.stdout)
