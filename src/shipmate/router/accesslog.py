"""The router's structured access log, read back into per-app HTTP metrics. Pure: the nginx
``log_format`` this module defines, a line parser, and what a parsed request adds to the
metrics.

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


def record(hit: Hit) -> None:
    """Count ``hit`` into the metrics (the dashboard's graphs sample them too,
    :mod:`shipmate.web.httpstats`)."""
    labels = {"app": hit.app, "class": hit.status_class}  # "class" is a Python keyword
    metrics.HTTP_REQUESTS.inc(1.0, **labels)
    metrics.HTTP_REQUEST_SECONDS.observe(hit.seconds, app=hit.app)
