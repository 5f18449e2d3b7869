"""Who may use the dashboard (pure): login rate limits, the CSRF and Origin checks every
POST passes, the client's address, and the cookie's attributes.

Rules (docs/dashboard.md states them for users):

- Failed logins are counted per user name and per client address over a sliding minute;
  after :data:`LOGIN_LIMIT` failures either one is refused with 429 until the oldest
  failure leaves the window. A refused attempt is not checked (and costs no hash).
- A POST is accepted only with the session's CSRF token (form field ``csrf`` or header
  ``X-CSRF-Token``, compared in constant time), and, when the browser names where the
  request comes from (``Origin``, else ``Referer``), only from the dashboard's own origin.
  The login form has its own token, bound to a short-lived cookie (double submit).
- The session cookie is HttpOnly, SameSite=Strict, Path=/, and Secure when the browser came
  over HTTPS (through the router, which says so in ``X-Forwarded-Proto``).
- The client's address is the peer's; behind the router on this machine (a loopback peer)
  it is the router's ``X-Real-IP``.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import ipaddress
import urllib.parse
from collections.abc import Iterable, Mapping

LOGIN_LIMIT = 5
LOGIN_WINDOW = 60.0
SESSION_COOKIE = "shipmate_session"
LOGIN_COOKIE = "shipmate_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


class RateLimiter:
    """Failures per key within a sliding window (``now`` is given: pure and testable)."""

    def __init__(self, limit: int = LOGIN_LIMIT, window: float = LOGIN_WINDOW) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures.get(key)
        if times is None:
            return collections.deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: Iterable[str], now: float) -> float:
        """Seconds until an attempt under ``keys`` is allowed again (0: allowed now)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                wait = max(wait, times[0] + self.window - now)
        return wait

    def failed(self, keys: Iterable[str], now: float) -> None:
        """Count one failure under each of ``keys``."""
        for key in keys:
            self._recent(key, now)
            self._failures.setdefault(key, collections.deque()).append(now)
            if len(self._failures) > 100_000:  # a flood of names: forget the oldest key
                self._failures.pop(next(iter(self._failures)))


def login_keys(user: str, address: str) -> tuple[str, str]:
    """The rate limiter's keys of one login attempt."""
    return f"user:{user[:64]}", f"addr:{address}"


def tokens_match(given: str, expected: str) -> bool:
    """True when a CSRF token matches, compared in constant time."""
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(),
                                                                 expected.encode())


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL ('' when it has none)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def same_origin(headers: Mapping[str, str], scheme: str, host: str) -> bool:
    """False when the browser says the request comes from another origin than
    ``scheme://host`` (``Origin``, else ``Referer``); True when it says nothing (a script
    such as curl: its CSRF token must still match)."""
    own = f"{scheme}://{host}".lower()
    origin = headers.get("Origin")
    if origin is not None:
        return origin.lower() == own
    referer = headers.get("Referer")
    return referer is None or origin_of(referer) == own


def scheme_of(secure: bool, headers: Mapping[str, str]) -> str:
    """``https`` or ``http``, as the browser sees the dashboard (behind a router, what it
    says in ``X-Forwarded-Proto``). Believing the header is safe: a browser sent across
    sites cannot set it, and all it changes is a stricter cookie and the origin a POST
    must come from."""
    if secure or headers.get("X-Forwarded-Proto", "") == "https":
        return "https"
    return "http"


def client_address(peer: str, headers: Mapping[str, str]) -> str:
    """The client's address: the peer, or behind a router on this machine its X-Real-IP."""
    real = headers.get("X-Real-IP", "")
    if _loopback(peer) and real:
        try:
            return str(ipaddress.ip_address(real))
        except ValueError:
            return peer
    return peer


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Principal:
    """The logged-in user of a request: name, admin or not, and the session's CSRF token."""

    name: str
    admin: bool
    csrf: str


def cookie_options(secure: bool, max_age: float | None) -> dict[str, object]:
    """Attributes of the dashboard's cookies (aiohttp's ``set_cookie`` keywords)."""
    options: dict[str, object] = {"httponly": True, "samesite": "Strict", "path": "/",
                                  "secure": secure}
    if max_age is not None:
        options["max_age"] = int(max_age)
    return options
