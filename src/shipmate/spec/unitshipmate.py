"""A ``.container`` unit's ``[X-Shipmate]`` section: how it is routed and replaced (pure).

fleet and systemd ignore ``X-`` sections; Shipmate's agent reads this one. Keys:

- ``Domain=`` (repeatable): names the router answers on for this unit, as for an app's
  custom domains. Instances of one template (``web@1``, ``web@2``) share one route.
- ``RoutePort=``: the container port that takes the traffic. It must be published
  (``PublishPort=``, any host port); with ``Domain=`` and exactly one published TCP port,
  that one is the default.
- ``Route=``: the route the unit's endpoints join (default: the unit's name without its
  instance and suffix, ``web@1.container`` -> ``web``). A PaaS app's units name their app.
- ``Release=``: the release tag the endpoints carry (the PaaS writes it; the router sends an
  app's traffic only to its active release). Units with ``Domain=`` take traffic with any.
- ``Replace=`` (``start-first``, the default, or ``stop-first``), ``RunningFor=`` (how long
  a container without ``HealthCmd=`` must stay up to count as healthy, default 2s) and
  ``Wait=`` (how long a new container may take to become healthy, default 60s): the health
  gate of a replacement, as a manifest's ``replace``/``running_for``/``wait``.
- ``Manifest=``, ``Container=``: written by ``apply --via-daemon`` (which manifest owns it).
"""

from __future__ import annotations

import dataclasses
import re

from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec
from shipmate.spec.names import validate_app_name, validate_domain
from shipmate.spec.unitcontainer import parse_timespan
from shipmate.spec.unitfile import UnitFile
from shipmate.spec.unitname import parse_unit_name

SECTION = "X-Shipmate"
KEYS = ("Domain", "RoutePort", "Route", "Release", "Replace", "RunningFor", "Wait",
        "Manifest", "Container")
RUNNING_FOR = 2.0  # seconds a container without a check must stay up to count as healthy
WAIT = 60.0  # seconds a new container may take to become healthy
_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class UnitRoute:
    """Where a unit's traffic comes from: the route it joins, the container port, and the
    domains it declares itself (empty: the route's own records, an app's, decide)."""

    name: str
    port: int
    domains: tuple[str, ...] = ()
    release: str = ""


@dataclasses.dataclass(frozen=True)
class UnitOptions:
    """What ``[X-Shipmate]`` says about a unit."""

    route: UnitRoute | None = None
    replace: str = "start-first"
    running_for: float = RUNNING_FOR
    wait: float = WAIT


def unit_options(unit: UnitFile, unit_name: str, spec: ContainerSpec) -> UnitOptions:
    """Read and check ``[X-Shipmate]`` of a ``.container`` unit whose spec is ``spec``."""
    for opt in unit.section(SECTION):
        if opt.name not in KEYS:
            raise ValidationError(f"line {opt.line}: unsupported key {opt.name!r} in "
                                  f"[{SECTION}]", hint="supported: " + ", ".join(KEYS))
    replace = unit.value(SECTION, "Replace") or "start-first"
    if replace not in ("start-first", "stop-first"):
        raise ValidationError(f"[{SECTION}] Replace={replace!r}: use start-first or stop-first")
    return UnitOptions(_route(unit, unit_name, spec), replace,
                       _span(unit, "RunningFor", RUNNING_FOR), _span(unit, "Wait", WAIT))


def default_route(unit_name: str) -> str:
    """``web@1.container`` -> ``web``: the unit's name without instance and suffix, as a
    route name (lower case, ``_`` and ``@`` as ``-``)."""
    prefix = parse_unit_name(unit_name).prefix.lower()
    return re.sub(r"[^a-z0-9.-]+", "-", prefix).strip(".-") or "unit"


def _route(unit: UnitFile, unit_name: str, spec: ContainerSpec) -> UnitRoute | None:
    domains = tuple(sorted({_domain(d) for d in unit.values(SECTION, "Domain") if d}))
    port_text = unit.value(SECTION, "RoutePort")
    if not domains and port_text is None:
        return None
    published = sorted({p.container_port for p in spec.ports if p.protocol == "tcp"})
    if port_text is None:
        if len(published) != 1:
            raise ValidationError(f"{unit_name}: [{SECTION}] Domain= needs RoutePort= (the "
                                  "container port that takes the traffic)",
                                  hint="for example RoutePort=8080, with PublishPort=8080")
        port = published[0]
    else:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValidationError(f"[{SECTION}] RoutePort={port_text!r} is not a port number")
        port = int(port_text)
    if port not in published:
        raise ValidationError(f"{unit_name}: RoutePort={port} is not published",
                              hint=f"add PublishPort={port} to [Container] (the host port "
                              "may be left out: Docker picks one)")
    name = validate_app_name(unit.value(SECTION, "Route") or default_route(unit_name))
    release = unit.value(SECTION, "Release") or ""
    if release and not _RELEASE.fullmatch(release):
        raise ValidationError(f"[{SECTION}] Release={release!r}: use letters, digits, "
                              "'_', '.' and '-'")
    return UnitRoute(name, port, domains, release)


def _domain(name: str) -> str:
    try:
        return validate_domain(name)
    except ValidationError as exc:
        raise ValidationError(f"[{SECTION}] Domain=: {exc.message}", hint=exc.hint) from None


def _span(unit: UnitFile, key: str, default: float) -> float:
    text = unit.value(SECTION, key)
    if text is None:
        return default
    try:
        return parse_timespan(text)
    except ValueError:
        raise ValidationError(f"[{SECTION}] {key}={text!r} is not a time span like 5s") from None
