"""Routing, pure: a request target (and its Accept header) -> a :class:`Target`: the upstream
URL, the cache key, the format (apt, pypi, npm) and how the body is served (as is, or rewritten
so its links point back at the cache)."""

from __future__ import annotations

import dataclasses
import enum
import functools

from shipmate.cache.policy import (
    ALIASES,
    Allowlist,
    Kind,
    Origin,
    Refused,
    canonical_path,
    classify,
    parse_origin,
)

ADMIN = "/_shipmate/cache"  # the HTML report, stats.json and gc; also / and /metrics
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
NPM_CORGI = "application/vnd.npm.install-v1+json"


class Rewrite(enum.Enum):
    """How a cached body is turned into the response."""

    NONE = "none"
    PYPI_HTML = "pypi-html"
    PYPI_JSON = "pypi-json"
    NPM = "npm"


@dataclasses.dataclass(frozen=True)
class Target:
    """One resolved request."""

    fmt: str  # apt | pypi | npm (stats are kept per format)
    origin: Origin
    path: str  # canonical, encoded, with query
    kind: Kind
    rewrite: Rewrite = Rewrite.NONE
    accept: str = ""  # the Accept header sent upstream ("" = none)

    @property
    def url(self) -> str:
        """The upstream URL."""
        return self.origin.url(self.path)

    @property
    def key(self) -> str:
        """The cache key: the upstream URL plus the representation asked for."""
        if self.rewrite is Rewrite.NONE:
            return self.url
        return f"{self.url} [{self.rewrite.value} {self.accept}]"


@dataclasses.dataclass(frozen=True)
class Routes:
    """What routing depends on: the allowlist and the mirrors' upstreams."""

    allowlist: Allowlist
    pypi: Origin
    npm: Origin
    pypi_prefix: str = ""  # path of the index under its origin (``/root/pypi`` for devpi)
    npm_prefix: str = ""

    @classmethod
    def build(cls, allowlist: Allowlist, pypi_url: str, npm_url: str) -> Routes:
        """From settings (``cache_pypi_upstream``, ``cache_npm_upstream``)."""
        pypi, pypi_path = parse_origin(pypi_url)
        npm, npm_path = parse_origin(npm_url)
        return cls(allowlist, pypi, npm, pypi_path.rstrip("/"), npm_path.rstrip("/"))


def fmt_for(origin: Origin, path: str, routes: Routes) -> str:
    """The stats format of a proxied URL: by host, or by the mirrors' configured upstreams."""
    if origin.host in ("pypi.org", "files.pythonhosted.org"):
        return "pypi"
    if origin.host == "registry.npmjs.org":
        return "npm"
    for fmt, up, prefix in (("pypi", routes.pypi, routes.pypi_prefix),
                            ("npm", routes.npm, routes.npm_prefix)):
        if origin == up and (not prefix or path.startswith(prefix + "/")):
            return fmt
    return "apt"


def is_admin(raw: str) -> bool:
    """Whether ``raw`` is one of the cache's own pages, not a package path."""
    return raw == "/" or raw == "/metrics" or raw.startswith(ADMIN)


def route(raw: str, accept: str, routes: Routes) -> Target:
    """Resolve a request target, checking the upstream allowlist; :class:`Refused` otherwise."""
    if raw[:7].lower() == "http://" or raw[:8].lower() == "https://":
        origin, path = parse_origin(raw)
        target = Target(fmt_for(origin, path, routes), origin, path, classify(path))
    else:
        target = _route_path(_npm_scoped(raw), accept, routes)
    check_allowed(target.origin, routes.allowlist)
    return target


@functools.lru_cache(maxsize=8192)
def cached_route(raw: str, accept: str, routes: Routes) -> Target:
    """:func:`route`, memoised: the same few thousand targets are asked for again and again."""
    return route(raw, accept, routes)


def check_allowed(origin: Origin, allowlist: Allowlist) -> None:
    """:class:`Refused` (403) unless ``origin`` is allowlisted: the cache is not an open proxy."""
    if not allowlist.allows(origin):
        raise Refused(403, f"upstream {origin.netloc} ({origin.scheme}) is not in cache_upstreams")


def _npm_scoped(raw: str) -> str:
    # npm asks for scoped packages as /@scope%2fname: the one place an encoded slash is meant.
    if raw.startswith("/npm/@"):
        head, sep, tail = raw[6:].partition("%2f") if "%2f" in raw else raw[6:].partition("%2F")
        if sep and "/" not in head:
            return "/npm/@" + head + "/" + tail
    return raw


def _route_path(raw: str, accept: str, routes: Routes) -> Target:
    path = canonical_path(raw)
    segs = path.split("/")
    if segs[1] == "pypi":
        return _route_pypi(path, segs, accept, routes)
    if segs[1] == "npm":
        return _route_npm(path, segs, accept, routes)
    if segs[1] in ALIASES:
        origin, base = parse_origin(ALIASES[segs[1]])
        rest = base.rstrip("/") + "/" + "/".join(segs[2:])
        return Target("apt", origin, rest, classify(rest))
    if len(segs) < 3 or ("." not in segs[1] and ":" not in segs[1]):
        raise Refused(404, "unknown path: use /HOST/PATH, /pypi/simple/ or /npm/")
    origin, rest = parse_origin("http://" + segs[1] + "/" + "/".join(segs[2:]))
    return Target(fmt_for(origin, rest, routes), origin, rest, classify(rest))


def _files(segs: list[str], fmt: str) -> Target:
    """``/<fmt>/files/SCHEME/HOST[:PORT]/PATH``: an artifact the mirror rewrote a link to."""
    if len(segs) < 6 or segs[3] not in ("http", "https"):
        raise Refused(404, f"bad {fmt} file path")
    origin, rest = parse_origin(f"{segs[3]}://{segs[4]}/" + "/".join(segs[5:]))
    return Target(fmt, origin, rest, Kind.IMMUTABLE)


def _route_pypi(path: str, segs: list[str], accept: str, routes: Routes) -> Target:
    if len(segs) > 2 and segs[2] == "files":
        return _files(segs, "pypi")
    if len(segs) < 3 or segs[2] != "simple":
        raise Refused(404, "PyPI mirror paths: /pypi/simple/NAME/")
    rest = routes.pypi_prefix + path[len("/pypi"):]
    if not rest.endswith("/"):
        rest += "/"
    if _prefers_json(accept):
        return Target("pypi", routes.pypi, rest, Kind.VOLATILE, Rewrite.PYPI_JSON, PYPI_JSON)
    return Target("pypi", routes.pypi, rest, Kind.VOLATILE, Rewrite.PYPI_HTML, "text/html")


def _prefers_json(accept: str) -> bool:
    """pip asks for PEP 691 JSON first; browsers and old pips get HTML."""
    best, best_q = "", -1.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = media.strip(), q
    return best == PYPI_JSON


def _route_npm(path: str, segs: list[str], accept: str, routes: Routes) -> Target:
    if len(segs) > 2 and segs[2] == "_files":
        return _files([*segs[:2], "files", *segs[3:]], "npm")
    if len(segs) < 3 or not segs[2]:
        raise Refused(404, "npm mirror paths: /npm/NAME")
    rest = path[len("/npm"):]
    if "/-/" in rest and rest.endswith(".tgz"):
        return Target("npm", routes.npm, routes.npm_prefix + rest, Kind.IMMUTABLE)
    if rest.startswith("/@") and len(segs) >= 4:
        # the registry wants the scope's slash encoded
        rest = f"/{segs[2]}%2F" + "/".join(segs[3:])
    rest = routes.npm_prefix + rest
    corgi = NPM_CORGI in accept
    accept_up = NPM_CORGI if corgi else "application/json"
    return Target("npm", routes.npm, rest, Kind.VOLATILE, Rewrite.NPM, accept_up)
