"""Router endpoints of this machine's container units, published under the agent's lease.

Every ``.container`` unit that declares a routed port (``[X-Shipmate] RoutePort=``, or
``Domain=`` with one published port; see :mod:`shipmate.spec.unitshipmate`) gets one key
``/shipmate/endpoints/<route>/web/<unit>-<machine>`` while its container runs and is not
failing (or still starting) its health check. A PaaS app's web units name their app as the
route and carry their release; a hand-written unit names its domains. The agent writes them
with its unit reports, under its machine lease: when the machine dies or is cut off, the
lease expires and every router drops its endpoints. There is no other endpoint writer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shipmate.engine.base import ContainerInfo
from shipmate.router import keys as route_keys
from shipmate.spec.unitshipmate import UnitRoute
from shipmate.store.base import Store

MAX_INSTANCE = 128


def published_port(container: ContainerInfo, port: int, host: str) -> int | None:
    """The host port that reaches the container's ``port`` at ``host`` (pure).

    Docker 20.10 may give the IPv4 and the IPv6 binding of one ``-p 5000`` different random
    host ports (moby#42442); the IPv6 one, dialled on an IPv4 address, is refused or, worse,
    reaches another container. So only a binding of ``host``'s address family counts."""
    v6 = ":" in host
    for p in container.ports:
        if p.container_port != port or not p.host_port or p.protocol != "tcp":
            continue
        if p.host_ip in ("", host) or p.host_ip == ("::" if v6 else "0.0.0.0"):
            return p.host_port
    return None


def instance_name(unit: str, machine: str) -> str:
    """The endpoint's instance segment: the unit (without ``.container``) and the machine."""
    name = f"{unit.removesuffix('.container')}-{machine}"
    if len(name) <= MAX_INSTANCE:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name[:MAX_INSTANCE - 13]}-{digest}"


def unit_endpoints(routes: Mapping[str, UnitRoute], containers: Mapping[str, ContainerInfo],
                   host: str, machine: str) -> dict[str, str]:
    """Endpoint key -> value for the routed units whose container takes traffic (pure)."""
    out: dict[str, str] = {}
    for unit, route in sorted(routes.items()):
        info = containers.get(unit)
        if info is None or not info.running or info.health in ("unhealthy", "starting"):
            continue
        port = published_port(info, route.port, host)
        if port is None:
            continue
        key = route_keys.endpoint_key(route.name, route_keys.ROUTED_PROCESS,
                                      instance_name(unit, machine))
        out[key] = route_keys.encode_endpoint(host, port, release=route.release,
                                              machine=machine, domains=route.domains)
    return out


class EndpointWriter:
    """Keeps the store's endpoint keys of this machine equal to what it should publish."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._published: dict[str, str] = {}

    def reset(self) -> None:
        """Forget what was written (a new lease: everything goes again)."""
        self._published = {}

    async def write(self, wanted: Mapping[str, str], lease: int) -> None:
        """Put the changed keys under ``lease`` and delete the ones no longer wanted."""
        for key, value in wanted.items():
            if self._published.get(key) != value:
                await self.store.put(key, value, lease=lease)
                self._published[key] = value
        for key in set(self._published) - set(wanted):
            await self.store.delete(key)
            # pop: the report and reconcile loops may both be here, or a reset came between
            self._published.pop(key, None)
