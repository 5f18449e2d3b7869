"""The SVG line charts: well-formed XML, values scaled to the height and times to the window,
gaps for missing values, "no data" without any, text escaped, the same numbers giving the
same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from shipmate.web.svgchart import line_chart

SVG = "{http://www.w3.org/2000/svg}"
TOP = 18  # the title band


def _paths(svg: str) -> list[str]:
    return [p.attrib["d"] for p in ET.fromstring(svg).iter(f"{SVG}path")]


def _points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in
            (p[1:].split(",") for p in d.split() if p[0] in "ML")]


def test_a_line_goes_by_time_across_the_window_with_the_largest_value_at_the_top() -> None:
    svg = line_chart("requests/s", {"requests": [(50, 0.0), (75, 10.0), (100, 5.0)]},
                     start=0, end=100, unit="req/s", width=200, height=40)
    root = ET.fromstring(svg)
    assert root.attrib["viewBox"] == f"0 0 200 {40 + TOP}"
    assert root.attrib["aria-label"] == "requests/s"
    assert next(t.text for t in root.iter(f"{SVG}text")) == "requests/s (max 10 req/s)"
    [d] = _paths(svg)
    assert _points(d) == [(100, TOP + 40), (150, TOP), (200, TOP + 20)]
    assert svg == line_chart("requests/s", {"requests": [(50, 0.0), (75, 10.0), (100, 5.0)]},
                             start=0, end=100, unit="req/s", width=200, height=40)


def test_lines_share_a_scale_and_each_is_named() -> None:
    svg = line_chart("t", {"mean": [(0, 1.0), (10, 2.0)], "p95": [(0, 4.0), (10, 8.0)]},
                     start=0, end=10, width=100, height=80)
    paths = list(ET.fromstring(svg).iter(f"{SVG}path"))
    assert [p.attrib["class"] for p in paths] == ["line line-0", "line line-1"]
    assert [p.find(f"{SVG}title").text for p in paths] == ["mean", "p95"]  # type: ignore[union-attr]
    assert _points(paths[0].attrib["d"])[1] == (100, TOP + 60)  # 2 of 8: a quarter up
    keys = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")][1:]
    assert sorted(keys) == ["mean", "p95"]  # type: ignore[type-var]


def test_missing_values_break_the_line_and_a_lone_point_is_a_dot() -> None:
    nan, inf = float("nan"), float("inf")
    [d] = _paths(line_chart("t", {"x": [(0, 1.0), (1, 2.0), (2, None), (3, nan), (4, 1.0),
                                        (5, inf), (6, -3.0), (7, 1.0)]}, start=0, end=7))
    assert d.count("M") == 3 and d.split()[2].startswith("M")
    assert "l0,0" in d  # the point at 4, alone between two gaps
    assert _points(d)[-2][1] == TOP + 90  # a negative value draws as zero


@pytest.mark.parametrize("lines", [{}, {"x": []}, {"x": [(1, None)]}, {"x": [(-5, 1.0)]}])
def test_nothing_in_the_window_says_no_data(lines: dict[str, list[tuple[float, float | None]]]
                                            ) -> None:
    svg = line_chart("latency", lines, start=0, end=10)
    root = ET.fromstring(svg)
    assert root.attrib["aria-label"] == "latency: no data" and "no data" in svg
    assert _paths(svg) == []


def test_all_zeros_draw_a_flat_line_at_the_bottom() -> None:
    [d] = _paths(line_chart("t", {"x": [(0, 0.0), (5, 0.0)]}, start=0, end=5, height=50))
    assert {y for _, y in _points(d)} == {TOP + 50}


def test_text_is_escaped() -> None:
    svg = line_chart('<script>"x"&', {'<b onload="y">': [(0, 1.0), (1, 2.0)]},
                     start=0, end=1, unit="<i>")
    root = ET.fromstring(svg)  # still one well-formed element, no attribute injected
    assert root.attrib["aria-label"] == '<script>"x"&'
    assert "<script>" not in svg and "<b" not in svg and "<i>" not in svg
    assert all("onload" not in e.attrib for e in root.iter())


def test_a_chart_needs_a_size() -> None:
    with pytest.raises(ValueError):
        line_chart("t", {}, start=0, end=1, width=0)
