"""The router's structured access log, read back into per-app HTTP metrics. Pure: the nginx
``log_format`` this module defines, a line parser, and what a parsed request adds to the
metrics and to the recent per-minute history the dashboard draws.

nginx writes one JSON object per request an app's server answered (``escape=json``, so a
request can never break out of its string): the app, the status, ``$request_time`` and
``$upstream_response_time``, the bytes sent, and when. The app is a literal that the
rendered config sets in each app's own ``server`` block (``set $shipmate_app APP``, see
:mod:`.render`): it is the server nginx chose, never a value a request supplies, so one app's
clients cannot make their requests count as another app's. Requests that reach no app (the
404 default server) are not written (``if=$shipmate_app``).

:mod:`.logtail` follows the file; :func:`record` feeds each request to
``shipmate_http_requests_total{app,class}`` and ``shipmate_http_request_seconds{app}``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re

from shipmate import metrics

LOG_NAME = "http.log"  # under the nginx prefix's logs/
FORMAT_NAME = "shipmate_http"
APP_VARIABLE = "$shipmate_app"
#: nginx's ``log_format`` body. ``$upstream_response_time`` is quoted: it is empty when no
#: upstream answered, and a list ("0.001, 0.004") when a request was retried on another one.
LOG_FORMAT = ('{"app":"$shipmate_app","status":$status,"request_time":$request_time,'
              '"upstream_time":"$upstream_response_time","bytes":$bytes_sent,"msec":$msec}')
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_APP = re.compile(r"^[a-z0-9][a-z0-9.-]{0,99}$")  # an app name (spec/names.py), bounded


@dataclasses.dataclass(frozen=True)
class Hit:
    """One request nginx answered for ``app``."""

    app: str
    status: int
    seconds: float  # $request_time
    at: float  # $msec: when nginx wrote the line (seconds since the epoch)
    upstream_seconds: float | None = None  # the last upstream's answer time, if any

    @property
    def status_class(self) -> str:
        """``2xx`` and so on."""
        return f"{self.status // 100}xx"


def parse_line(line: bytes) -> Hit | None:
    """A line of the log, or None for one that is not ours (cut short, or from another
    format): a bad line is skipped, never an error."""
    try:
        data = json.loads(line)
        app, status = data["app"], data["status"]
        seconds, at = float(data["request_time"]), float(data["msec"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(app, str) or not _APP.fullmatch(app) or not isinstance(status, int) \
            or not 100 <= status <= 599 or not (math.isfinite(seconds) and seconds >= 0):
        return None
    return Hit(app, status, seconds, at, _upstream(data.get("upstream_time")))


def _upstream(text: object) -> float | None:
    # "0.004", "0.001, 0.004" (retried: the last one answered), "-", or "" (none asked)
    if not isinstance(text, str):
        return None
    try:
        value = float(text.replace(":", ",").split(",")[-1].strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


@dataclasses.dataclass
class Minute:
    """An app's requests within one minute (``start``: seconds since the epoch, a multiple
    of 60)."""

    start: int
    requests: int = 0
    errors: int = 0  # 5xx
    seconds: float = 0.0  # the sum of their $request_time
    slowest: float = 0.0

    @property
    def mean(self) -> float:
        """Mean request time (0 without requests)."""
        return self.seconds / self.requests if self.requests else 0.0


class History:
    """The last ``minutes`` minutes of each app's requests, for graphs: bounded to
    ``max_apps`` apps (the one idle longest is dropped first) and ``minutes`` per app."""

    def __init__(self, minutes: int = 60, max_apps: int = 1000) -> None:
        self.minutes, self.max_apps = minutes, max_apps
        self._apps: collections.OrderedDict[str, collections.deque[Minute]] = \
            collections.OrderedDict()

    def add(self, hit: Hit) -> None:
        """Count ``hit`` into its app's minute."""
        start = int(hit.at // 60 * 60)
        minutes = self._apps.get(hit.app)
        if minutes is None:
            minutes = self._apps[hit.app] = collections.deque(maxlen=self.minutes)
            while len(self._apps) > self.max_apps:
                self._apps.popitem(last=False)
        self._apps.move_to_end(hit.app)
        if not minutes or minutes[-1].start < start:
            minutes.append(Minute(start))
        slot = next((m for m in reversed(minutes) if m.start == start), None)
        if slot is None:  # older than the oldest minute kept: too late to draw
            return
        slot.requests += 1
        slot.errors += hit.status >= 500
        slot.seconds += hit.seconds
        slot.slowest = max(slot.slowest, hit.seconds)

    def series(self, app: str, now: float) -> list[Minute]:
        """``app``'s last ``minutes`` minutes up to ``now``, oldest first, idle minutes as
        zeros (copies: the caller may keep them)."""
        last = int(now // 60 * 60)
        kept = {m.start: m for m in self._apps.get(app, ())}
        return [dataclasses.replace(kept[t]) if t in kept else Minute(t)
                for t in range(last - 60 * (self.minutes - 1), last + 1, 60)]

    def apps(self) -> list[str]:
        """The apps with history, sorted."""
        return sorted(self._apps)


#: This daemon's recent per-app requests (the router on this machine feeds it).
HISTORY = History()


def record(hit: Hit, history: History | None = None) -> None:
    """Count ``hit`` into the metrics and ``history`` (this daemon's by default)."""
    labels = {"app": hit.app, "class": hit.status_class}  # "class" is a Python keyword
    metrics.HTTP_REQUESTS.inc(1.0, **labels)
    metrics.HTTP_REQUEST_SECONDS.observe(hit.seconds, app=hit.app)
    (HISTORY if history is None else history).add(hit)
