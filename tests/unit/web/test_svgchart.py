"""The SVG charts: well-formed XML, values scaled to the height, bad numbers drawn as zero,
titles escaped, the same numbers giving the same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from shipmate.web.svgchart import bar_chart, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def _points(svg: str) -> list[tuple[float, float]]:
    line = ET.fromstring(svg).find(f"{SVG}polyline")
    assert line is not None
    return [(float(x), float(y)) for x, y in
            (p.split(",") for p in line.attrib["points"].split())]


def test_a_sparkline_goes_left_to_right_with_the_largest_value_at_the_top() -> None:
    svg = sparkline([0, 5, 10, 5], width=100, height=20, title="requests")
    root = ET.fromstring(svg)
    assert root.attrib["viewBox"] == "0 0 100 20" and root.attrib["aria-label"] == "requests"
    pts = _points(svg)
    assert [x for x, _ in pts] == sorted(x for x, _ in pts) and pts[0][0] == 1 and pts[-1][0] == 99
    ys = [y for _, y in pts]
    assert ys[2] == 1 and ys[0] == 19 and ys[1] == ys[3] == 10  # top, bottom, half-way
    assert sparkline([0, 5, 10, 5], width=100, height=20, title="requests") == svg


@pytest.mark.parametrize("values", [[], [3], [0, 0, 0], [float("nan"), -1, float("inf")]])
def test_a_sparkline_of_nothing_or_bad_numbers_is_flat(values: list[float]) -> None:
    pts = _points(sparkline(values, width=50, height=10))
    assert len(pts) >= 2
    assert len({y for _, y in pts}) == 1


def test_bars_scale_to_the_height_and_skip_zeros() -> None:
    svg = bar_chart([1, 0, 4, 2], width=40, height=20, labels=["a", "b", "c", "d"])
    rects = ET.fromstring(svg).findall(f"{SVG}rect")
    assert [float(r.attrib["height"]) for r in rects] == [5, 20, 10]
    assert [float(r.attrib["x"]) for r in rects] == [0, 20, 30]
    assert all(float(r.attrib["y"]) + float(r.attrib["height"]) == 20 for r in rects)
    assert [r.find(f"{SVG}title").text for r in rects] == ["a", "c", "d"]  # type: ignore[union-attr]
    assert ET.fromstring(bar_chart([])).findall(f"{SVG}rect") == []


def test_titles_and_colours_are_escaped() -> None:
    svg = bar_chart([1], title='<script>"x"&', fill='red" onload="x', labels=["<b>"])
    root = ET.fromstring(svg)  # still one well-formed element, no attribute injected
    assert root.attrib["aria-label"] == '<script>"x"&'
    assert "onload" not in root.find(f"{SVG}rect").attrib  # type: ignore[union-attr]
    assert "<script>" not in svg and "<b>" not in svg


def test_a_chart_needs_a_size() -> None:
    with pytest.raises(ValueError):
        sparkline([1, 2], width=0)
