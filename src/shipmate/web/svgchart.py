"""Server-rendered line charts: numbers in, an inline ``<svg>`` string out. Pure and
deterministic (the same numbers give the same bytes), no script and no external style, so a
page draws them without a CDN or a front-end build. The dashboard's per-app request and
latency graphs are drawn with it (from :mod:`shipmate.web.httpstats`' numbers).

A chart covers a fixed time window (``start`` to ``end``, the newest at the right), so a
young series fills only its right-hand part. Values are scaled to the chart's height (the
largest reaches the top; its value is written beside the title); a missing value (None,
NaN, infinite) breaks its line, a negative one draws as zero. Without a single value in the
window the chart says "no data". Titles, units and line names are escaped. Each line has the
class ``line-N`` (its ``<title>`` names it) and the legend's text ``key-N``, for the page's
style sheet; the default colour is ``currentColor``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

Points = Sequence[tuple[float, float | None]]
_TOP = 18  # the title's band above the plot


def line_chart(title: str, lines: Mapping[str, Points], *, start: float, end: float,
               unit: str = "", width: int = 360, height: int = 90) -> str:
    """One line per entry of ``lines`` (name -> (time, value) points, oldest first)."""
    if width <= 0 or height <= 0:
        raise ValueError("a chart needs a positive width and height")
    span = end - start if end > start else 1.0
    kept = {name: [(t, _clean(v)) for t, v in pts if start <= t <= end]
            for name, pts in lines.items()}
    values = [v for pts in kept.values() for _, v in pts if v is not None]
    if not values:
        return (_open(f"{title}: no data", width, height)
                + f'<text x="4" y="13" class="title">{escape(title)}</text>'
                f'<text x="{width // 2}" y="{_TOP + height // 2 + 4}" text-anchor="middle" '
                f'class="nodata">no data</text></svg>')
    top = max(values) or 1.0
    out = [_open(title, width, height),
           f'<text x="4" y="13" class="title">{escape(title)} (max {top:.3g}'
           f'{" " + escape(unit) if unit else ""})</text>',
           f'<line x1="0" y1="{_TOP + height}" x2="{width}" y2="{_TOP + height}" '
           f'class="axis" stroke="currentColor" stroke-opacity="0.2"/>']
    for i, (name, pts) in enumerate(kept.items()):
        coords = [None if v is None else
                  (_num((t - start) / span * width), _num(_TOP + height - v / top * height))
                  for t, v in pts]
        out.append(f'<path class="line line-{i}" d="{_path(coords)}" fill="none" '
                   f'stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" '
                   f'stroke-linecap="round"><title>{escape(name)}</title></path>')
    out += _legend(list(kept), width)
    out.append("</svg>")
    return "".join(out)


def _open(label: str, width: int, height: int) -> str:
    full = height + _TOP
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
            f'aria-label="{escape(label)}" width="{width}" height="{full}" '
            f'viewBox="0 0 {width} {full}"><title>{escape(label)}</title>')


def _legend(names: Sequence[str], width: int) -> list[str]:
    # right-aligned, the last name at the right edge; ~6.5 px a character at 11 px
    out, x = [], width - 2
    for i in reversed(range(len(names))):
        out.append(f'<text x="{x}" y="13" text-anchor="end" class="key key-{i}">'
                   f'{escape(names[i])}</text>')
        x -= round(6.5 * len(names[i])) + 10
    return out


def _path(coords: Sequence[tuple[str, str] | None]) -> str:
    """``M``oves where a line starts again after a gap; a lone point is drawn as a dot
    (a zero-length segment with a round cap)."""
    parts, drawing = [], False
    for i, c in enumerate(coords):
        if c is None:
            drawing = False
            continue
        alone = not drawing and (i + 1 == len(coords) or coords[i + 1] is None)
        parts.append(f"{'L' if drawing else 'M'}{c[0]},{c[1]}" + (" l0,0" if alone else ""))
        drawing = True
    return " ".join(parts)


def _clean(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return max(value, 0.0)


def _num(x: float) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
