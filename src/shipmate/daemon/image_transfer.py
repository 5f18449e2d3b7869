"""Image distribution between machines, the I/O part (rules in
:mod:`shipmate.daemon.image_peers`).

- :func:`serve_images`: the daemon's TCP listener (``api_port``). It serves one read-only
  route, ``GET /v1/images/REF``: a ``docker save`` stream of a Shipmate app image, to clients
  on the ``api_clients`` networks; and ``GET /metrics`` behind a bearer token when
  ``metrics_token_file`` is set (:mod:`shipmate.web.metrics`). On a machine of a cluster
  made by ``cluster init``/``join`` (``cluster_tls_dir``) it is HTTPS, and the image route
  also requires a client certificate from the cluster CA (the address allowlist stays, as a
  second fence); the machine holding the CA also takes joins there
  (:mod:`shipmate.cluster.admit`). Nothing else of the API is reachable over TCP.
- :class:`PeerImages`: what the agent's container runner calls when a unit's image is not
  here: it asks the peers (the unit's image source first) and ``docker load``\\ s the stream,
  reporting progress, within ``image_pull_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
from aiohttp import web

from shipmate.clock import within
from shipmate.config import Config
from shipmate.daemon import image_peers as peers
from shipmate.engine.base import Engine
from shipmate.errors import EngineError, ShipmateError
from shipmate.scheduler.registry import Registry
from shipmate.store.base import Store

log = logging.getLogger(__name__)
CHUNK = 1 << 20
_NETWORKS: web.AppKey[tuple[peers.Network, ...]] = web.AppKey("networks")
_ENGINE: web.AppKey[Engine] = web.AppKey("engine")
_MTLS: web.AppKey[bool] = web.AppKey("mtls")


# --- serving ---------------------------------------------------------------------------------

def _refuse(status: int, message: str, hint: str = "") -> web.Response:
    error = {"code": "forbidden" if status == 403 else "image", "message": message, "hint": hint}
    return web.json_response({"error": error}, status=status)


async def _get_image(request: web.Request) -> web.StreamResponse:
    networks: tuple[peers.Network, ...] = request.app[_NETWORKS]
    if not peers.client_allowed(request.remote, networks):
        log.warning("refused image request from %s", request.remote)
        return _refuse(403, f"client {request.remote} is not allowed",
                       "add its network to the api_clients setting")
    if request.app[_MTLS] and not _peer_certificate(request):
        log.warning("refused image request from %s: no client certificate", request.remote)
        return _refuse(403, "a client certificate from the cluster CA is required",
                       "only machines of the cluster may fetch images")
    try:
        ref = peers.validate_ref(request.match_info["ref"])
        engine = request.app[_ENGINE]
        info = await engine.image(ref)
    except ShipmateError as exc:
        return _refuse(exc.status, exc.message, exc.hint or "")
    if info is None:
        return _refuse(404, f"no image {ref} on this machine")
    if not peers.servable(info.labels):
        return _refuse(403, f"{ref} is not a Shipmate app image", "only app images are served")
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                       "X-Shipmate-Image-Id": info.id})
    await resp.prepare(request)
    sent = 0
    async for chunk in engine.save_image(info.id):
        await resp.write(chunk)
        sent += len(chunk)
    await resp.write_eof()
    log.info("served image %s to %s (%.1f MB)", info.id[:19], request.remote, sent / 1e6)
    return resp


def _peer_certificate(request: web.Request) -> bool:
    """True when the client presented a certificate the TLS layer verified against the
    cluster CA (CERT_OPTIONAL: one that does not verify fails the handshake already)."""
    transport = request.transport
    return bool(transport is not None and transport.get_extra_info("peercert"))


def image_app(engine: Engine, clients: str, *, mtls: bool = False) -> web.Application:
    """The TCP API: the image route only, for clients on ``clients`` (CIDRs), and with
    ``mtls`` only for clients with a cluster certificate."""
    app = web.Application()
    app[_NETWORKS] = peers.parse_networks(clients)
    app[_ENGINE] = engine
    app[_MTLS] = mtls
    app.router.add_get(peers.IMAGE_ROUTE, _get_image)
    return app


async def serve_images(config: Config, engine: Engine,
                       more: Callable[[web.Application], None] | None = None) -> None:
    """Serve the image route on ``api_bind:api_port`` until cancelled (with the routes
    ``more`` adds: ``/metrics`` behind a token)."""
    tls = _server_tls(config)
    app = image_app(engine, config.api_clients, mtls=tls is not None)
    if more is not None:
        more(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.api_bind, int(config.api_port),
                          ssl_context=tls).start()
        log.info("image route on %s:%s for %s%s", config.api_bind, config.api_port,
                 config.api_clients, " with a cluster certificate" if tls else "")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _server_tls(config: Config) -> ssl.SSLContext | None:
    if not config.cluster_tls_dir:
        return None
    from shipmate.cluster.tlsfiles import server_context

    return server_context(config.cluster_tls_dir)


# --- fetching --------------------------------------------------------------------------------

class PeerImages:
    """Fetches an image this machine lacks from the machines that have it."""

    def __init__(self, store: Store, engine: Engine, config: Config) -> None:
        self.registry = Registry(store)
        self.engine = engine
        self.machine_id = str(config.machine_id)
        self.port = int(config.api_port)
        self.timeout = float(config.image_pull_timeout)
        self.tls: ssl.SSLContext | None = None
        if config.cluster_tls_dir:
            from shipmate.cluster.tlsfiles import client_context

            self.tls = client_context(config.cluster_tls_dir)

    async def fetch(self, ref: str, labels: Mapping[str, str],
                    progress: Callable[[str], None]) -> None:
        """Load ``ref`` from a peer (hinted source first); EngineError naming every machine
        asked and why it could not give it, when none could within the timeout."""
        peers.validate_ref(ref)
        machines = {m: mc.public_ip for m, mc in (await self.registry.machines()).items()}
        order = peers.sources(peers.source_hint(labels), machines, self.machine_id)
        if not order or not self.port:
            raise EngineError(f"image {ref} is not on {self.machine_id} and no other machine "
                              "can send it" + ("" if self.port else " (api_port is 0)"),
                              hint="build or load the image on this machine, or set api_port "
                                   "on every machine")
        deadline = time.monotonic() + self.timeout
        failures = []
        for machine, address in order:
            left = deadline - time.monotonic()
            if left <= 0:
                failures.append(f"{machine}: no time left")
                break
            try:
                await within(self._pull(ref, machine, address, progress), left)
                return
            except TimeoutError:
                failures.append(f"{machine}: timed out after {self.timeout:g}s")
            except (ShipmateError, aiohttp.ClientError, OSError) as exc:
                failures.append(f"{machine}: {exc}")
        raise EngineError(f"could not get image {ref} from another machine: "
                          + "; ".join(failures),
                          hint="is the image's builder machine up? (fleet list-machines)")

    async def _pull(self, ref: str, machine: str, address: str,
                    progress: Callable[[str], None]) -> None:
        url = peers.image_url(address, self.port, ref, tls=self.tls is not None)
        progress(f"pulling image {ref[:19]} from {machine}")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=30)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, ssl=self.tls if self.tls is not None else True) as resp:
            if resp.status != 200:
                raise EngineError(f"HTTP {resp.status} {await _reason(resp)}")
            started, got = time.monotonic(), [0]
            await self.engine.load_image(_counted(resp, got, machine, ref, progress))
        if await self.engine.image(ref) is None:
            raise EngineError(f"the stream from {machine} did not hold {ref}")
        took = time.monotonic() - started
        progress(f"pulled image {ref[:19]} from {machine}: {got[0] / 1e6:.1f} MB in {took:.1f}s")
        log.info("pulled image %s from %s (%.1f MB, %.1f s)", ref[:19], machine,
                 got[0] / 1e6, took)


async def _reason(resp: aiohttp.ClientResponse) -> str:
    try:
        body = await resp.json(content_type=None)
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        return resp.reason or ""


async def _counted(resp: aiohttp.ClientResponse, got: list[int], machine: str, ref: str,
                   progress: Callable[[str], None]) -> AsyncIterator[bytes]:
    """The response body in chunks, reporting every ~25 MB received."""
    step = 25_000_000
    async for chunk in resp.content.iter_chunked(CHUNK):
        before = got[0]
        got[0] += len(chunk)
        if got[0] // step != before // step:
            progress(f"pulling image {ref[:19]} from {machine}: {got[0] / 1e6:.0f} MB")
        yield chunk
