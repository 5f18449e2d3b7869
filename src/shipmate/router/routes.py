"""Routes from store contents: which app answers on which names and ports, served by which
endpoints. Pure: key/value pairs in, a :class:`RouterState` out (no I/O, no store client).

The rules (docs/router.md says the same for users):

- An app is routed when ``/shipmate/routes/domains/<app>`` exists. It answers on
  ``APP.GLOBALDOMAIN`` (when a global domain is set) and on its custom domains, by Host header on
  the HTTP port, and on its dedicated ``port`` (any Host) when it has one.
- Only endpoints of process ``web`` that are healthy and belong to the app's active release
  (``/shipmate/routes/active/<app>``; ``"*"`` means every release) take traffic. No active
  release means no endpoint: the app answers with its 502 page.
- Endpoints that declare their own domains (a ``.container`` unit's ``[X-Shipmate]
  Domain=``) make a route named by their ``<app>`` key segment, as if an app of that name had
  those custom domains and every release active; an app's own record wins over them.
- A domain claimed twice goes to the app that added it as a custom domain, else to the app
  whose name sorts first; a port claimed twice (or equal to the HTTP or HTTPS port) goes to
  the first app. Every such conflict is reported in :attr:`RouterState.problems`.
- An app with a certificate (``/shipmate/tls/certs/<app>``) answers over HTTPS on the HTTPS
  port for the domains its certificate covers, and plain HTTP for those redirects there
  (:class:`RouteTls`); domains it does not cover stay plain HTTP. An HTTPS port of 0 turns
  HTTPS off. Pending ACME challenges are answered on every HTTP server.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

from shipmate.errors import ValidationError
from shipmate.router.keys import (
    ANY_RELEASE,
    ROUTED_PROCESS,
    AppDomains,
    EndpointRecord,
    StoreInput,
    decode,
    validate_domain,
)
from shipmate.router.tlskeys import Challenge, TlsInput, covered, decode_tls


@dataclasses.dataclass(frozen=True, order=True)
class Endpoint:
    """One live instance an app's traffic may go to."""

    host: str
    port: int
    machine: str = ""
    instance: str = ""

    @property
    def address(self) -> str:
        """``host:port`` as nginx wants it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class RouteTls:
    """An app's HTTPS: the file its certificate and key go to under the router's prefix
    (named by their digest, so a new certificate is a new config), the domains it covers
    and whether responses carry HSTS."""

    file: str
    domains: tuple[str, ...]
    hsts: bool = False
    pem: str = dataclasses.field(default="", repr=False)  # chain, then key


@dataclasses.dataclass(frozen=True)
class Route:
    """How one app is reached: virtual host names on the HTTP port, an optional port of its
    own, and its routable endpoints (sorted, unique by address)."""

    app: str
    domains: tuple[str, ...] = ()
    port: int | None = None
    endpoints: tuple[Endpoint, ...] = ()
    tls: RouteTls | None = None


@dataclasses.dataclass(frozen=True)
class RouterState:
    """Everything the nginx config is rendered from. Equal states render to equal bytes."""

    http_port: int = 80
    routes: tuple[Route, ...] = ()
    problems: tuple[str, ...] = ()
    https_port: int = 0  # 0: no HTTPS
    challenges: tuple[Challenge, ...] = ()

    @property
    def tls_files(self) -> dict[str, str]:
        """File name -> PEM (chain and key) of every route served over HTTPS."""
        return {r.tls.file: r.tls.pem for r in self.routes if r.tls is not None}


def state_from_kvs(
    pairs: Iterable[tuple[str, bytes]], *, http_port: int = 80, default_global_domain: str = "",
    https_port: int = 0,
) -> RouterState:
    """Decode store key/value pairs and compute the routes (see :func:`compute_routes`)."""
    pairs = list(pairs)
    return compute_routes(
        decode(pairs), http_port=http_port, default_global_domain=default_global_domain,
        tls=decode_tls(pairs), https_port=https_port,
    )


def compute_routes(
    inp: StoreInput, *, http_port: int = 80, default_global_domain: str = "",
    tls: TlsInput | None = None, https_port: int = 0,
) -> RouterState:
    """The routes for ``inp``; ``default_global_domain`` applies when the store sets none."""
    tls = tls or TlsInput()
    problems = [*inp.problems, *tls.problems]
    units = {rec.app for rec in inp.endpoints if rec.domains} - set(inp.apps)
    inp = _with_unit_routes(inp, problems)
    global_domain = _global_domain(inp.global_domain or default_global_domain, problems)
    owners = _domain_owners(inp, global_domain, units, problems)
    ports = _port_owners(inp, {http_port, https_port} - {0}, problems)
    routes = []
    for app in sorted(inp.apps):
        domains = tuple(sorted(d for d, owner in owners.items() if owner == app))
        port = inp.apps[app].port if ports.get(inp.apps[app].port or 0) == app else None
        if not domains and port is None:
            problems.append(f"{app}: no domain and no port, so it cannot be reached")
        endpoints = _endpoints(app, inp.active.get(app), inp.endpoints)
        route_tls = _route_tls(app, domains, tls, problems) if https_port else None
        routes.append(Route(app, domains, port, endpoints, route_tls))
    return RouterState(http_port, tuple(routes), tuple(problems), https_port,
                       tls.challenges)


def _route_tls(app: str, domains: tuple[str, ...], tls: TlsInput,
               problems: list[str]) -> RouteTls | None:
    record = tls.certs.get(app)
    if record is None:
        return None
    names = covered(domains, record.names)
    if not names:
        problems.append(f"{app}: its certificate covers none of its domains; served over HTTP")
        return None
    pem = record.crt.rstrip("\n") + "\n" + record.key.rstrip("\n") + "\n"
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    return RouteTls(f"{app}-{digest}.pem", names, app in tls.hsts, pem)


def _with_unit_routes(inp: StoreInput, problems: list[str]) -> StoreInput:
    """``inp`` with a route for each name whose endpoints declare domains."""
    declared: dict[str, set[str]] = {}
    for rec in inp.endpoints:
        if rec.domains:
            declared.setdefault(rec.app, set()).update(rec.domains)
    if not declared:
        return inp
    apps, active = dict(inp.apps), dict(inp.active)
    for name, domains in sorted(declared.items()):
        if name in inp.apps:
            problems.append(f"{name}: unit endpoints declare domains, but the app {name} "
                            "has its own; the app's are used")
            continue
        apps[name] = AppDomains(tuple(sorted(domains)))
        active[name] = ANY_RELEASE
    return dataclasses.replace(inp, apps=apps, active=active)


def _global_domain(domain: str, problems: list[str]) -> str:
    if not domain:
        return ""
    try:
        return validate_domain(domain)
    except ValidationError as exc:
        problems.append(f"global domain: {exc.message}")
        return ""


def _domain_owners(inp: StoreInput, global_domain: str, units: set[str],
                   problems: list[str]) -> dict[str, str]:
    # (domain, priority, app): a custom domain (0) beats a derived APP.GLOBAL name (1), and
    # both beat a name a unit declares for itself (2): whoever may submit a unit must not be
    # able to take an app's traffic.
    claims: list[tuple[str, int, str]] = []
    for app, settings in inp.apps.items():
        claims.extend((d, 2 if app in units else 0, app) for d in settings.domains)
        if global_domain:
            try:
                claims.append((validate_domain(f"{app}.{global_domain}"), 1, app))
            except ValidationError as exc:
                problems.append(f"{app}: {exc.message}")
    owners: dict[str, str] = {}
    for domain, _, app in sorted(claims):
        if domain not in owners:
            owners[domain] = app
        elif owners[domain] != app:
            problems.append(f"{app}: domain {domain} already belongs to {owners[domain]}")
    return owners


def _port_owners(inp: StoreInput, router_ports: set[int],
                 problems: list[str]) -> dict[int, str]:
    owners: dict[int, str] = {}
    for app in sorted(inp.apps):
        port = inp.apps[app].port
        if port is None:
            continue
        if port in router_ports:
            problems.append(f"{app}: port {port} is the router's HTTP or HTTPS port")
        elif port in owners:
            problems.append(f"{app}: port {port} already belongs to {owners[port]}")
        else:
            owners[port] = app
    return owners


def _endpoints(
    app: str, release: str | None, records: Iterable[EndpointRecord]
) -> tuple[Endpoint, ...]:
    if release is None:
        return ()
    chosen: dict[tuple[str, int], Endpoint] = {}
    for rec in sorted(records, key=lambda r: (r.process, r.instance, r.machine)):
        if rec.app != app or rec.process != ROUTED_PROCESS or not rec.healthy:
            continue
        if release != ANY_RELEASE and rec.release != release:
            continue
        chosen.setdefault((rec.host, rec.port), Endpoint(rec.host, rec.port, rec.machine,
                                                         f"{rec.process}.{rec.instance}"))
    return tuple(sorted(chosen.values()))
