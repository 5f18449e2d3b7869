"""Cache policy, pure: request target -> upstream URL, cache key, kind; freshness decisions;
allowlists. No I/O here: the server asks, this module answers.

Three request forms reach the cache (see docs/cache.md):

* proxy form, as apt sends with ``Acquire::http::Proxy``: ``GET http://host/path``;
* URL-prefix form, apt-cacher-ng's: ``GET /host/path`` (and aliases such as ``/debian/...``);
* mirrors: ``/pypi/simple/...``, ``/pypi/files/SCHEME/HOST/...``, ``/npm/...``,
  ``/npm/_files/SCHEME/HOST/...``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from urllib.parse import quote, unquote, urlsplit

from shipmate import netaddr
from shipmate.errors import ValidationError

DEFAULT_PORTS = {"http": 80, "https": 443}

# apt-cacher-ng style backend aliases for the prefix form (``/debian/dists/...``).
ALIASES = {
    "debian": "http://deb.debian.org/debian",
    "debian-security": "http://deb.debian.org/debian-security",
    "ubuntu": "http://archive.ubuntu.com/ubuntu",
}

PATH_SAFE = "/!$&'()*+,;=:@-._~"
_BY_HASH = re.compile(r"/by-hash/(SHA256|SHA512|SHA1|MD5Sum)/([0-9a-fA-F]+)$")
_IMMUTABLE_EXT = re.compile(
    r"\.(deb|udeb|ddeb|dsc|diff\.gz|debian\.tar\.\w+|orig\.tar\.\w+|tar\.(gz|xz|bz2|zst)|"
    r"tgz|whl|zip|egg|tar|metadata|tar\.\w+\.asc)$"  # .asc: an upstream tarball's signature
)
_HOST_HEADER = re.compile(r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")
_HASH_ALGOS = {"SHA256": "sha256", "SHA512": "sha512", "SHA1": "sha1", "MD5Sum": "md5"}


class Refused(ValidationError):
    """A request the cache will not serve; ``status`` is the HTTP answer (400 or 403)."""

    code = "cache_refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, hint="see docs/cache.md for the request forms the cache accepts")
        self.status = status


class Kind(enum.Enum):
    """How long a cached body may be trusted."""

    IMMUTABLE = "immutable"  # never changes under its name: kept until evicted
    VOLATILE = "volatile"  # an index: fresh for a while, then revalidated


class Action(enum.Enum):
    """What to do with a request, given what is cached."""

    HIT = "hit"
    REVALIDATE = "revalidate"
    FETCH = "fetch"


@dataclasses.dataclass(frozen=True)
class Origin:
    """An upstream origin: scheme, host, port."""

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        """``host`` or ``host:port`` when the port is not the scheme's default."""
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return self.host
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on this origin."""
        return f"{self.scheme}://{self.netloc}{path}"


@dataclasses.dataclass(frozen=True)
class Allowlist:
    """Upstream hosts the cache may contact. A bare host allows the default ports of http and
    https; ``host:port`` allows exactly that port (how tests point the cache at a fake upstream
    on loopback without opening loopback in general)."""

    hosts: frozenset[str]
    host_ports: frozenset[tuple[str, int]]

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        """Parse ``"deb.debian.org,127.0.0.1:8080"``."""
        hosts: set[str] = set()
        pairs: set[tuple[str, int]] = set()
        for item in (i.strip().lower() for i in text.split(",")):
            if not item:
                continue
            host, sep, port = item.rpartition(":")
            if sep and port.isdigit() and "]" not in port:
                pairs.add((host.strip("[]"), int(port)))
            else:
                hosts.add(item.strip("[]"))
        return cls(frozenset(hosts), frozenset(pairs))

    def allows(self, origin: Origin) -> bool:
        """Whether the cache may fetch from ``origin``."""
        if (origin.host, origin.port) in self.host_ports:
            return True
        return origin.host in self.hosts and DEFAULT_PORTS.get(origin.scheme) == origin.port

    def allows_connect(self, host: str, port: int) -> bool:
        """CONNECT tunnels: only allowlisted hosts, only on 443."""
        return port == 443 and host.lower() in self.hosts


Network = netaddr.Network
client_allowed = netaddr.client_allowed


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse the client allowlist, e.g. ``"127.0.0.0/8,::1/128"``."""
    return netaddr.parse_networks(text, "cache_clients")


def parse_origin(url: str) -> tuple[Origin, str]:
    """Split an absolute http(s) URL into its origin and canonical path (with query).

    Refuses user info, other schemes and bad ports; the path goes through :func:`canonical_path`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(400, f"malformed URL: {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise Refused(400, f"only http and https URLs are proxied: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise Refused(400, "URLs with user info are refused")
    origin = Origin(scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme])
    path = parts.path or "/"
    return origin, canonical_path(path + (f"?{parts.query}" if parts.query else ""))


def canonical_path(raw: str) -> str:
    """The canonical, re-encoded form of a request path, or :class:`Refused`.

    Refused: NUL and control characters, backslashes, encoded slashes or backslashes,
    ``.``/``..`` segments (plain or percent-encoded), double encoding of those.
    Empty segments collapse (``a//b`` is ``a/b``); a trailing slash is kept.
    """
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in raw):
        raise Refused(400, "control, space or non-ASCII characters in the path")
    path, _, query = raw.partition("?")
    if "#" in raw or "\\" in raw or not path.startswith("/"):
        raise Refused(400, "the path must be absolute, without fragments or backslashes")
    low = path.lower()
    if any(bad in low for bad in ("%2f", "%5c", "%00")):
        raise Refused(400, "encoded slash, backslash or NUL in the path")
    out: list[str] = []
    for seg in path.split("/")[1:]:
        try:
            dec = unquote(seg, errors="strict")
        except UnicodeDecodeError as exc:
            raise Refused(400, "percent-encoding is not valid UTF-8") from exc
        if dec in (".", "..") or any(c in dec for c in "/\\\x00"):
            raise Refused(403, "path traversal refused")
        if "%" in dec and re.search(r"%(2e|2f|5c|00|25)", dec.lower()):
            raise Refused(400, "double-encoded path refused")
        if any(ord(c) < 0x20 for c in dec):
            raise Refused(400, "control characters in the path")
        out.append(quote(dec, safe=PATH_SAFE))
    trailing = path.endswith("/")
    segs = [s for s in out if s]
    canon = "/" + "/".join(segs) + ("/" if trailing and segs else "")
    return canon + (f"?{quote(unquote(query), safe='=&+,:@-._~/')}" if query else "")


def classify(path: str) -> Kind:
    """Immutable (packages, by-hash files, wheels, tarballs) or volatile (everything else:
    Release files, Packages/Sources/Translation indexes, unknown files)."""
    bare = path.partition("?")[0]
    if _BY_HASH.search(bare):
        return Kind.IMMUTABLE
    if "/dists/" in bare:
        return Kind.VOLATILE
    return Kind.IMMUTABLE if _IMMUTABLE_EXT.search(bare) else Kind.VOLATILE


def hash_from_path(path: str) -> tuple[str, str] | None:
    """``(algorithm, hex digest)`` a by-hash path promises, e.g. ``("sha256", "ab12...")``."""
    m = _BY_HASH.search(path.partition("?")[0])
    if not m:
        return None
    return _HASH_ALGOS[m.group(1)], m.group(2).lower()


@dataclasses.dataclass(frozen=True)
class Cached:
    """What :func:`decide` needs to know about a cached body."""

    kind: Kind
    fetched_at: float  # wall-clock seconds of the last download or successful revalidation


def decide(cached: Cached | None, now: float, fresh_seconds: float) -> Action:
    """Hit, revalidate or fetch: immutable bodies are always hits; volatile ones are hits
    within ``fresh_seconds`` of their last check and revalidated after."""
    if cached is None:
        return Action.FETCH
    if cached.kind is Kind.IMMUTABLE:
        return Action.HIT
    age = now - cached.fetched_at
    return Action.HIT if 0 <= age < fresh_seconds else Action.REVALIDATE


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """Headers for revalidating a cached body upstream."""
    out = {}
    if etag:
        out["If-None-Match"] = etag
    if last_modified:
        out["If-Modified-Since"] = last_modified
    return out


def base_url(host_header: str | None, fallback: str) -> str:
    """``http://HOST[:PORT]`` for links the mirrors rewrite, from the client's Host header when
    it is a plain host[:port] (anything else could inject markup), else ``fallback``."""
    if host_header and _HOST_HEADER.match(host_header):
        return f"http://{host_header}"
    return f"http://{fallback}"
