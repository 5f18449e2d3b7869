"""What each page shows, computed from what :mod:`.data` read (pure: records in, rows out).

- Instances of an app are its fleet units ``APP_TYPE.N_TAG.container``; each row says where
  the unit runs (the machine its agent reports it on, else where it is placed), its state
  and its router endpoint (healthy or not).
- A release's author is the audit event that made it: an event of the app with a verb that
  deploys (push, config:set, ps:scale...) that was running when the release was recorded
  (events are recorded when their request ends, and carry how long it took).
- A non-admin user sees only the apps granted to them (:mod:`.access`), their units and
  their events.
- An app's request graphs are drawn from :mod:`shipmate.web.httpstats`' samples of the
  metrics ``/metrics`` serves, by :mod:`shipmate.web.svgchart`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shipmate.agent.endpoints import instance_name
from shipmate.paas.model import Release
from shipmate.paas.units import parse_unit_name, unit_prefix
from shipmate.router.accesslog import CLASSES
from shipmate.web.dashboard.access import may_see, visible
from shipmate.web.dashboard.auth import Principal
from shipmate.web.dashboard.data import Platform
from shipmate.web.events import AuditEvent, iso, summary_text
from shipmate.web.httpstats import INTERVAL, KEEP, Sample, quantile, rates
from shipmate.web.svgchart import line_chart

DEPLOYING_VERBS = frozenset({"push", "config:set", "config:unset", "ps:scale", "ps:restart",
                             "releases:rollback", "ps:rebuild", "git:from-image",
                             "git:load-image", "resource:limit", "resource:reserve",
                             "resource:limit-clear", "resource:reserve-clear"})
_SLACK = 2.0  # seconds: clocks of the event's and the release's machines may differ a bit


@dataclasses.dataclass(frozen=True)
class Instance:
    """One running (or wanted) instance of an app."""

    unit: str
    name: str  # web.1
    process: str
    release: str  # the unit's tag, v3-ab12
    machine: str
    state: str  # active/running, or "waiting" before an agent reports it
    endpoint: str
    health: str  # healthy, unhealthy, or "-" (no endpoint: not routed)


def instances_by_app(platform: Platform, only: str = "") -> dict[str, list[Instance]]:
    """The instances of every app (or of ``only``), by process and number, in one pass."""
    reported = {s.unit: s for s in platform.states}
    # An instance's endpoint is keyed by its unit and machine (agent/endpoints.py).
    eps = {(e.app, e.instance): e for e in platform.endpoints if e.process == "web"}
    found: dict[str, list[Instance]] = {}
    for unit in platform.units:
        if only and not unit.startswith(unit_prefix(only)):
            continue
        parsed = parse_unit_name(unit)
        if parsed is None or (only and parsed[0] != only):
            continue
        app, proc, n, tag = parsed
        st = reported.get(unit)
        machine = st.machine if st else ",".join(platform.placements.get(unit, ())) or "-"
        ep = eps.get((app, instance_name(unit, machine))) if proc == "web" else None
        found.setdefault(app, []).append(Instance(
            unit, f"{proc}.{n}", proc, tag, machine,
            f"{st.active_state}/{st.sub_state}" if st else "waiting",
            f"{ep.host}:{ep.port}" if ep else "-",
            ("healthy" if ep.healthy else "unhealthy") if ep else "-"))
    for rows in found.values():
        rows.sort(key=lambda r: (r.process, int(r.name.rsplit(".", 1)[1]), r.unit))
    return found


def instances(platform: Platform, app: str) -> list[Instance]:
    """The instances of ``app``, by process and number."""
    return instances_by_app(platform, app).get(app, [])


def running(rows: Iterable[Instance]) -> int:
    """How many of ``rows`` run."""
    return sum(1 for r in rows if r.state.startswith("active"))


def app_rows(platform: Platform, user: Principal, http_port: int = 80
             ) -> list[dict[str, Any]]:
    """The overview's apps table: the apps ``user`` sees, with their ``APP.GLOBALDOMAIN``
    URL on the router's ``http_port``."""
    port = "" if http_port == 80 else f":{http_port}"
    by_app = instances_by_app(platform)
    rows = []
    for name in visible(user, platform.apps, platform.grants):
        info = platform.apps[name]
        found = by_app.get(name, [])
        rows.append({"name": name, "locked": info.locked,
                     "release": f"v{info.current}" if info.current else "-",
                     "running": running(found), "instances": len(found),
                     "formation": " ".join(f"{k}={v}" for k, v in sorted(
                         info.formation.items())),
                     "url": f"http://{name}.{platform.global_domain}{port}"
                     if platform.global_domain else ""})
    return rows


def app_of_unit(unit: str) -> str:
    """The app a PaaS unit belongs to ('' for other units)."""
    parsed = parse_unit_name(unit)
    return parsed[0] if parsed else ""


def unit_rows(platform: Platform, user: Principal, only: str = "") -> list[dict[str, Any]]:
    """fleetctl list-units for the page: every unit (an admin) or the units of the apps
    ``user`` sees (or just ``only``); where each runs, its target and its state."""
    reported: dict[str, list[Any]] = {}
    for st in platform.states:
        reported.setdefault(st.unit, []).append(st)
    rows = []
    for unit in sorted(platform.units):
        if only and unit != only:
            continue
        app = app_of_unit(unit)
        if not user.admin and not (app and may_see(user, app, platform.grants)):
            continue
        states = reported.get(unit) or [None]
        for st in states:
            machine = st.machine if st else ",".join(platform.placements.get(unit, ())) or "-"
            m = platform.machines.get(machine)
            rows.append({"unit": unit, "app": app, "machine": machine,
                         "ip": m.public_ip if m else "",
                         "desired": platform.desired.get(unit, "inactive"),
                         "active": st.active_state if st else "-",
                         "sub": st.sub_state if st else "-"})
    return rows


def machine_rows(platform: Platform) -> list[dict[str, Any]]:
    """The live machines and how many units each runs."""
    count: dict[str, int] = {}
    for st in platform.states:
        count[st.machine] = count.get(st.machine, 0) + 1
    return [{"id": mid, "ip": m.public_ip, "units": count.get(mid, 0),
             "metadata": ", ".join(f"{k}={v}" for k, v in m.metadata)}
            for mid, m in sorted(platform.machines.items())]


def event_rows(events: Sequence[AuditEvent], user: Principal,
               grants: Mapping[str, frozenset[str]]) -> list[dict[str, Any]]:
    """Audit events, newest first, as the pages list them (a non-admin user sees the
    events of their apps only)."""
    shown = [e for e in events if user.admin or (e.app and may_see(user, e.app, grants))]
    return [{"seq": e.seq, "time": iso(e.time), "actor": e.actor, "via": e.via,
             "verb": e.verb, "app": e.app, "summary": summary_text(e), "outcome": e.outcome}
            for e in reversed(shown)]


def authors(releases: Sequence[Release], events: Sequence[AuditEvent]
            ) -> dict[int, AuditEvent]:
    """Release number -> the event that made it (see the module's rules)."""
    deploying = [e for e in events if e.verb in DEPLOYING_VERBS and e.outcome == "ok"]
    found: dict[int, AuditEvent] = {}
    for rel in releases:
        for e in deploying:
            if e.time - e.duration - _SLACK <= rel.created <= e.time + _SLACK:
                found[rel.version] = e
                break
    return found


def release_rows(releases: Sequence[Release], current: int,
                 events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """The app's releases, newest first, with who made each."""
    made_by = authors(releases, events)
    return [{"version": r.version, "label": r.label, "created": iso(r.created),
             "description": r.description, "rev": r.git_rev[:7],
             "by": made_by[r.version].actor if r.version in made_by else "-",
             "verb": made_by[r.version].verb if r.version in made_by else "",
             "current": r.version == current}
            for r in sorted(releases, key=lambda r: r.version, reverse=True)]


def hit_rate(counters: Mapping[str, Any]) -> str:
    """Share of a cache's requests served from the cache, ``87.5%`` ('-': none yet)."""
    served = int(counters.get("hits", 0)) + int(counters.get("revalidated", 0))
    total = served + int(counters.get("misses", 0))
    return f"{100 * served / total:.1f}%" if total else "-"


def human_bytes(n: float) -> str:
    """``12.3 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cache_view(snapshot: Mapping[str, Any] | None,
               entries: Sequence[tuple[str, str, int, float]], top: int = 10
               ) -> dict[str, Any]:
    """The cache page: per format its requests, hit rate and bytes saved (served from the
    cache instead of upstream), and the largest cached files (url, format, size, last use)."""
    if snapshot is None:
        return {"enabled": False}
    formats = [{"format": fmt, "requests": c.get("requests", 0), "hits": c.get("hits", 0),
                "misses": c.get("misses", 0), "hit_rate": hit_rate(c),
                "saved": human_bytes(c.get("bytes_from_cache", 0)),
                "fetched": human_bytes(c.get("bytes_from_upstream", 0))}
               for fmt, c in snapshot.get("formats", {}).items()]
    storage = snapshot.get("storage", {})
    files = [{"name": url.rsplit("/", 1)[-1] or url, "url": url, "format": fmt,
              "size": human_bytes(size), "used": iso(used)}
             for url, fmt, size, used in sorted(entries, key=lambda e: -e[2])[:top]]
    return {"enabled": True, "formats": formats,
            "hit_rate": hit_rate(snapshot.get("total", {})),
            "saved": human_bytes(snapshot.get("total", {}).get("bytes_from_cache", 0)),
            "entries": storage.get("entries", 0), "bytes": human_bytes(storage.get("bytes", 0)),
            "files": files}


def request_graphs(samples: Sequence[Sample], bounds: Sequence[float],
                   now: float) -> dict[str, Any]:
    """An app's request graphs over the last samples' window (requests and 5xx per second;
    mean and 95th percentile time in ms) and its totals since the daemon started, as of
    the last sample: requests per status class and the time's median and 95th percentile."""
    points = rates(samples, bounds)
    # the samples' span (a young daemon's graphs are not a sliver at the right), at most
    # what is kept
    start = max(now - KEEP * INTERVAL, samples[0].time if samples else now)
    span = f", last {_span(now - start)}" if points else ""
    charts = [
        line_chart(f"requests/s{span}", {"requests": [(p.time, p.requests) for p in points],
                                  "5xx": [(p.time, p.errors) for p in points]},
                   unit="req/s", start=start, end=now),
        line_chart(f"request time{span}", {"mean": [(p.time, _ms(p.mean)) for p in points],
                                    "p95": [(p.time, _ms(p.p95)) for p in points]},
                   unit="ms", start=start, end=now)]
    last = samples[-1] if samples else Sample(now)
    cumulative = list(zip(bounds, last.buckets, strict=False))
    return {"charts": charts, "total": last.requests,
            "classes": [(c, n) for c, n in zip(CLASSES, last.classes, strict=True) if n],
            "p50": _ms_text(quantile(cumulative, 0.5)),
            "p95": _ms_text(quantile(cumulative, 0.95))}


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def _ms_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.3g} ms"


def config_rows(keys: Sequence[str]) -> list[dict[str, str]]:
    """Config keys with their values hidden (the page never receives a value)."""
    return [{"key": k, "value": "••••••"} for k in keys]


def ago(ts: float, now: float | None = None) -> str:
    """``5m ago``."""
    delta = max(0, int((time.time() if now is None else now) - ts))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if delta >= size:
            return f"{delta // size}{unit} ago"
    return f"{delta}s ago"
