"""The dashboard as a daemon component: its listener on ``dashboard_port``, its route
through the router, and the metrics sampler its graphs draw from.

The route is published the way any routed unit's is (:mod:`shipmate.agent.endpoints`): an
endpoint ``/shipmate/endpoints/shipmate/web/dashboard-<machine>`` that declares the domain
``shipmate.GLOBALDOMAIN``, under a lease of this daemon, so every machine's router sends
that name to the dashboards that run and forgets one whose daemon stopped. The router
serves it over HTTPS once a certificate for the route ``shipmate`` exists
(``/shipmate/tls/certs/shipmate``, written by ``certs:add shipmate`` or
``letsencrypt:enable shipmate``, :mod:`shipmate.paas.certs`), as for an app. No app may be
named ``shipmate`` (:mod:`shipmate.paas.domains`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiohttp import web

from shipmate.config import Config
from shipmate.errors import ShipmateError
from shipmate.router import keys as route_keys
from shipmate.web.dashboard.server import Dashboard, make_app
from shipmate.web.httpstats import INTERVAL

log = logging.getLogger(__name__)
ROUTE = "shipmate"


def endpoint(config: Config, global_domain: str) -> tuple[str, str] | None:
    """The endpoint key and value this machine's dashboard publishes (None: no global
    domain, so no name to route)."""
    if not global_domain:
        return None
    bind = config.dashboard_bind
    host = config.public_ip if bind in ("0.0.0.0", "::", "") else bind
    key = route_keys.endpoint_key(ROUTE, route_keys.ROUTED_PROCESS,
                                  f"dashboard-{config.machine_id}")
    return key, route_keys.encode_endpoint(host, config.dashboard_port, release="",
                                           machine=config.machine_id,
                                           domains=[f"{ROUTE}.{global_domain}"])


class DashboardServer:
    """Serves the dashboard while it runs (a daemon component's ``run``)."""

    def __init__(self, dash: Dashboard, config: Config) -> None:
        self.dash, self.config = dash, config
        self.ttl = max(10.0, 3 * config.reconcile_interval)

    async def run(self) -> None:
        """Listen, publish the route and sample metrics until cancelled."""
        runner = web.AppRunner(make_app(self.dash), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.dashboard_bind,
                              self.config.dashboard_port).start()
            log.info("dashboard on %s:%d", self.config.dashboard_bind,
                     self.config.dashboard_port)
            await asyncio.gather(self._publish(), self._sample(), self.dash.recent.run())
        finally:
            for task in list(self.dash.deploys.tasks):  # deploys end with the daemon
                task.cancel()
            await runner.cleanup()

    async def _global_domain(self) -> str:
        kv = await self.dash.store.get(route_keys.GLOBAL_DOMAIN_KEY)
        if kv is None:
            return self.config.global_domain
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(kv.value).get("domain", ""))
        return ""

    async def _publish(self) -> None:
        store, lease = self.dash.store, 0
        published: tuple[str, str] | None = None
        try:
            while True:
                try:
                    if lease:
                        await store.keepalive(lease)
                except ShipmateError:
                    lease, published = 0, None  # the lease, and the key, are gone
                try:
                    wanted = endpoint(self.config, await self._global_domain())
                    if wanted != published:
                        if published is not None:
                            await store.delete(published[0])
                        if wanted is not None:
                            lease = lease or await store.grant(self.ttl)
                            await store.put(wanted[0], wanted[1], lease=lease)
                        published = wanted
                except ShipmateError as exc:
                    log.warning("dashboard: could not publish its route: %s", exc)
                await asyncio.sleep(self.config.reconcile_interval)
        finally:
            if lease:
                with contextlib.suppress(ShipmateError):
                    await store.revoke(lease)

    async def _sample(self) -> None:
        while True:
            self.dash.sampler.sample(time.time())
            await asyncio.sleep(INTERVAL)
