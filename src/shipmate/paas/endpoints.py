"""Publishes this machine's live web instances as router endpoints.

Every machine runs one :class:`EndpointPublisher`. It lists the local containers that carry
the PaaS labels, and for each running one with a published port it writes
``/shipmate/endpoints/<app>/<process>/<instance>`` under its own lease. When the machine dies
or is cut off, the lease expires and every router drops its endpoints. It follows the engine's
events and also re-reads on a timer, since events can be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shipmate.clock import Clock, SystemClock
from shipmate.engine.base import ContainerInfo, Engine
from shipmate.errors import LeaseNotFoundError, ShipmateError
from shipmate.paas.units import (
    APP_LABEL,
    CONTAINER_PORT,
    INSTANCE_LABEL,
    PROCESS_LABEL,
    RELEASE_LABEL,
)
from shipmate.router import keys as route_keys
from shipmate.store.base import Store

log = logging.getLogger(__name__)


def wanted_endpoints(containers: list[ContainerInfo], host: str,
                     machine: str) -> dict[str, str]:
    """Endpoint key -> value for the containers that should take traffic (pure)."""
    out: dict[str, str] = {}
    for c in containers:
        app = c.labels.get(APP_LABEL)
        proc, inst, tag = (c.labels.get(PROCESS_LABEL), c.labels.get(INSTANCE_LABEL),
                           c.labels.get(RELEASE_LABEL))
        if not (app and proc and inst and tag) or not c.running or c.health == "unhealthy":
            continue
        port = published_port(c, host)
        if port is None:
            continue
        instance = f"{inst.rpartition('.')[2]}-{tag}-{machine}"
        key = route_keys.endpoint_key(app, proc, instance)
        out[key] = route_keys.encode_endpoint(host, port, release=tag, machine=machine)
    return out


def published_port(container: ContainerInfo, host: str) -> int | None:
    """The host port that reaches the container's port 5000 at ``host`` (pure).

    Docker 20.10 may give the IPv4 and the IPv6 binding of one ``-p 5000`` different random
    host ports (moby#42442); the IPv6 one, dialled on an IPv4 address, is refused or, worse,
    reaches another container. So only a binding of ``host``'s address family counts."""
    v6 = ":" in host
    for p in container.ports:
        if p.container_port != CONTAINER_PORT or not p.host_port or p.protocol != "tcp":
            continue
        if p.host_ip in ("", host) or p.host_ip == ("::" if v6 else "0.0.0.0"):
            return p.host_port
    return None


class EndpointPublisher:
    """Keeps the store's endpoints for this machine equal to what runs here."""

    def __init__(self, store: Store, engine: Engine, *, host: str, machine: str,
                 ttl: float, clock: Clock | None = None, interval: float = 1.0,
                 resync: float = 5.0) -> None:
        self.store, self.engine = store, engine
        self.host, self.machine, self.ttl = host, machine, ttl
        self.clock = clock or SystemClock()
        self.interval = interval  # lease keepalive cadence
        self.resync = resync  # full re-read even without engine events (they can be missed)
        self._lease = 0
        self._published: dict[str, str] = {}
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Publish until cancelled; the lease is revoked on the way out. The lease is kept
        alive every ``interval``; the containers are listed (one inspect each) only when the
        engine reports a change, the lease was lost, or ``resync`` seconds have passed."""
        events = asyncio.create_task(self._follow_events())
        last_sync = float("-inf")
        try:
            while True:
                try:
                    fresh_lease = await self._renew()
                    due = (self._wake.is_set() or fresh_lease
                           or self.clock.now() - last_sync >= self.resync)
                    self._wake.clear()
                    if due:
                        await self._publish()
                        last_sync = self.clock.now()
                except ShipmateError as exc:
                    log.warning("endpoint sync failed: %s", exc)
                    self._lease, self._published = 0, {}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            events.cancel()
            if self._lease:
                with contextlib.suppress(ShipmateError):
                    await self.store.revoke(self._lease)

    async def _follow_events(self) -> None:
        while True:
            try:
                async for _ in self.engine.events({"type": ["container"],
                                                   "label": [APP_LABEL]}):
                    self._wake.set()
            except ShipmateError:
                await asyncio.sleep(1)

    async def sync(self) -> None:
        """One full pass: renew the lease, write new endpoints, delete gone ones."""
        await self._renew()
        await self._publish()

    async def _publish(self) -> None:
        containers = await self.engine.list(None, all=False)
        wanted = wanted_endpoints(containers, self.host, self.machine)
        for key, value in wanted.items():
            if self._published.get(key) != value:
                await self.store.put(key, value, lease=self._lease)
        for key in set(self._published) - set(wanted):
            await self.store.delete(key)
        self._published = wanted

    async def _renew(self) -> bool:
        """Keep the lease alive; True when a new one had to be granted (republish all)."""
        if self._lease:
            try:
                await self.store.keepalive(self._lease)
                return False
            except LeaseNotFoundError:
                self._published = {}
        self._lease = await self.store.grant(self.ttl)
        return True
