"""Tiny server-rendered charts: numbers in, an inline ``<svg>`` string out. Pure and
deterministic (the same numbers give the same bytes), no script, no external style, so a page
draws them without a CDN or a front-end build. For the dashboard's per-app request and
latency graphs (:func:`shipmate.web.httpstats.app_http_summary` gives the numbers).

Each chart scales its values to its own height (the largest value reaches the top; all zeros
draw a flat line or no bars), takes a ``title`` for screen readers and a tooltip (escaped),
and carries a ``class`` (``shipmate-spark``, ``shipmate-bars``) to be styled by the page;
the default colour is ``currentColor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24,
              title: str = "", stroke: str = "currentColor") -> str:
    """A line through ``values``, left to right (one value: a flat line)."""
    points = _clean(values)
    top = max(points, default=0.0)
    pad = 1.0  # half the stroke: the line's peaks are not clipped
    if len(points) < 2:
        points = points * 2 or [0.0, 0.0]
    step = (width - 2 * pad) / (len(points) - 1)
    usable = height - 2 * pad
    coords = " ".join(f"{_num(pad + i * step)},{_num(pad + usable - _scale(v, top) * usable)}"
                      for i, v in enumerate(points))
    return (_open("shipmate-spark", width, height, title)
            + f'<polyline fill="none" stroke="{escape(stroke)}" stroke-width="1.5" '
            f'stroke-linejoin="round" stroke-linecap="round" points="{coords}"/></svg>')


def bar_chart(values: Sequence[float], *, width: int = 120, height: int = 24,
              title: str = "", fill: str = "currentColor",
              labels: Sequence[str] = ()) -> str:
    """One bar per value, left to right, with a 1-pixel gap; ``labels`` (one per value)
    become each bar's tooltip."""
    bars = _clean(values)
    top = max(bars, default=0.0)
    out = [_open("shipmate-bars", width, height, title)]
    if bars:
        slot = width / len(bars)
        for i, v in enumerate(bars):
            h = _scale(v, top) * height
            if h <= 0:
                continue
            tip = f"<title>{escape(labels[i])}</title>" if i < len(labels) else ""
            out.append(f'<rect x="{_num(i * slot)}" y="{_num(height - h)}" '
                       f'width="{_num(max(slot - 1, 0.5))}" height="{_num(h)}" '
                       f'fill="{escape(fill)}">{tip}</rect>')
    out.append("</svg>")
    return "".join(out)


def _open(css_class: str, width: int, height: int, title: str) -> str:
    if width <= 0 or height <= 0:
        raise ValueError("a chart needs a positive width and height")
    label = f' aria-label="{escape(title)}"' if title else ""
    tip = f"<title>{escape(title)}</title>" if title else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img"{label}>{tip}')


def _clean(values: Sequence[float]) -> list[float]:
    """Negative, infinite and NaN values draw as zero: a chart never breaks on bad input."""
    return [float(v) if math.isfinite(v) and v > 0 else 0.0 for v in values]


def _scale(value: float, top: float) -> float:
    return value / top if top > 0 else 0.0


def _num(x: float) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
