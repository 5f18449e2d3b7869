"""Cache statistics: counters per format, and their renderings (JSON, Prometheus, HTML)."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

FORMATS = ("apt", "pypi", "npm")


@dataclasses.dataclass
class Counters:
    """Counters of one format."""

    requests: int = 0
    hits: int = 0  # served from cache without asking upstream
    revalidated: int = 0  # served from cache after upstream answered 304
    misses: int = 0  # needed a download (started one or joined one in progress)
    errors: int = 0  # answered with an error (upstream failure, verification failure)
    upstream_fetches: int = 0  # downloads started upstream (single-flight: one per file)
    bytes_from_cache: int = 0  # bytes served of bodies already in the cache
    bytes_from_upstream: int = 0  # bytes downloaded from upstream
    bytes_served: int = 0  # bytes sent to clients in all


_HELP = {
    "requests": "requests answered",
    "hits": "requests served from cache without asking upstream",
    "revalidated": "requests served from cache after upstream confirmed it (304)",
    "misses": "requests that needed an upstream download",
    "errors": "requests answered with an error",
    "upstream_fetches": "downloads started upstream",
    "bytes_from_cache": "bytes served from cached bodies",
    "bytes_from_upstream": "bytes downloaded from upstream",
    "bytes_served": "bytes sent to clients",
}


class Stats:
    """Counters per format, plus refusals (not tied to a format)."""

    def __init__(self) -> None:
        self.formats = {f: Counters() for f in FORMATS}
        self.refused = 0
        self.verified = 0  # downloads checked against a hash an index or path promised
        self.verify_failures = 0
        self.over_cap = 0  # requests refused because their client had too many connections

    def of(self, fmt: str) -> Counters:
        """The counters of ``fmt`` (unknown formats count as apt)."""
        return self.formats.get(fmt, self.formats["apt"])

    def snapshot(self, storage: dict[str, Any]) -> dict[str, Any]:
        """Everything, for ``stats.json`` and ``shipmate cache stats``."""
        per = {f: dataclasses.asdict(c) for f, c in self.formats.items()}
        total = {k: sum(p[k] for p in per.values()) for k in _HELP}
        return {"formats": per, "total": total, "refused": self.refused,
                "verified": self.verified, "verify_failures": self.verify_failures,
                "over_cap": self.over_cap,
                "storage": storage}


def prometheus(snap: dict[str, Any]) -> str:
    """Prometheus text exposition of a :meth:`Stats.snapshot`."""
    lines = []
    for name, help_text in _HELP.items():
        metric = f"shipmate_cache_{name}_total"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for fmt, counters in snap["formats"].items():
            lines.append(f'{metric}{{format="{fmt}"}} {counters[name]}')
    for name in ("refused", "verified", "verify_failures", "over_cap"):
        metric = f"shipmate_cache_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {snap[name]}"]
    for name, value in snap["storage"].items():
        metric = f"shipmate_cache_storage_{name}"
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    return "\n".join(lines) + "\n"


def html_report(snap: dict[str, Any]) -> str:
    """The ``/_shipmate/cache`` page."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in _HELP)
    rows = "".join(
        f"<tr><th>{html.escape(fmt)}</th>" + "".join(f"<td>{c[k]}</td>" for k in _HELP) + "</tr>"
        for fmt, c in [*snap["formats"].items(), ("total", snap["total"])]
    )
    storage = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in snap["storage"].items())
    return (
        "<!DOCTYPE html><html><head><title>Shipmate package cache</title></head><body>"
        "<h1>Shipmate package cache</h1>"
        f"<table border=1><tr><th>format</th>{head}</tr>{rows}</table>"
        f"<p>refused: {snap['refused']}, verified downloads: {snap['verified']}, "
        f"verification failures: {snap['verify_failures']}, refused as over the "
        f"per-client connection cap: {snap['over_cap']}</p>"
        f"<ul>{storage}</ul></body></html>"
    )
