"""The joining machine's way in, on the TCP API of the machine holding the cluster CA.

``GET /v1/cluster/ca`` gives the CA certificate (public: the joiner checks its fingerprint
against its token before it trusts anything). ``POST /v1/cluster/join`` takes a token, the
machine's name and address and a certificate request; with a live, unused token it answers
the signed certificate, the CA, the etcd client endpoints and, while the etcd cluster has
fewer members than ``cluster_etcd_members``, the member it was added as (a learner, promoted
by the joiner once its member has caught up). A bad or used token changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from shipmate.cluster import ca, join_tokens
from shipmate.cluster import machine as mach
from shipmate.errors import ConflictError, ShipmateError, ValidationError
from shipmate.scheduler.registry import Registry
from shipmate.store.etcd import EtcdStore
from shipmate.web.eventlog import EventLog
from shipmate.web.events import AuditEvent

log = logging.getLogger(__name__)
_ADMITTER: web.AppKey[Admitter] = web.AppKey("admitter")


class TokenRefusedError(ShipmateError):
    """A join with a token that is not (or no longer) valid."""

    status = 403


class Admitter:
    """Signs joiners' certificates and adds their etcd members (one join at a time)."""

    def __init__(self, store: EtcdStore, p: ca.Pki, cluster: str, etcd_members: int,
                 events: EventLog | None = None) -> None:
        self.store, self.pki, self.cluster = store, p, cluster
        self.etcd_members = etcd_members
        self.events = events  # joins and refused joins go into the audit trail
        self._lock = asyncio.Lock()

    def ca_pem(self) -> bytes:
        """The CA certificate."""
        return self.pki.ca_cert.read_bytes()

    async def admit(self, body: dict[str, Any]) -> dict[str, Any]:
        """One join; ValidationError/ConflictError (nothing changed) when refused. Both are
        recorded in the audit trail, the joining machine as the actor."""
        name = mach.validate_name(str(body.get("name", "")))
        address = mach.validate_address(str(body.get("address", "")))
        try:
            out = await self._admit(name, address, body)
        except ShipmateError as exc:
            await self._record(name, f"{name} ({address})", "refused", exc.message)
            raise
        role = "an etcd member" if out["member"] else "an etcd client"
        await self._record(name, f"{name} ({address}) as {role}", "ok", "")
        return out

    async def _record(self, name: str, summary: str, outcome: str, error: str) -> None:
        if self.events is None:
            return
        try:
            await self.events.record(AuditEvent(time.time(), name, "cluster", "cluster:join",
                                                "", summary, outcome, error))
        except ShipmateError as exc:  # the join itself is done (or refused) either way
            log.warning("could not record the join of %s: %s", name, exc)

    async def _admit(self, name: str, address: str, body: dict[str, Any]) -> dict[str, Any]:
        csr = str(body.get("csr", "")).encode()
        async with self._lock:
            machines = await Registry(self.store).machines()
            members = await self.store.members()
            if name in machines or any(m.name == name for m in members):
                raise ConflictError(f"a machine called {name} is in the cluster already",
                                    hint="give this one another --name, or `shipmate cluster "
                                         f"remove {name}` first")
            token = str(body.get("token", ""))
            if not await join_tokens.valid(self.store, token):
                raise _refused(name, address)
            cert = ca.sign(self.ca_pem(), self.pki.ca_key.read_bytes(), csr, name, [address])
            out: dict[str, Any] = {"cluster": self.cluster, "cert": cert.decode(),
                                   "ca": self.ca_pem().decode(), "member": False}
            voting = [m for m in members if not m.learner]
            added = None
            if len(members) < self.etcd_members:
                added, after = await self.store.add_learner(mach.peer_url(address))
                peers = [f"{m.name or name}={m.peer_urls[0]}" for m in after if m.peer_urls]
                out.update(member=True, member_id=format(added.id, "x"),
                           initial_cluster=",".join(peers))
            # used up last, once everything else worked: a failed join leaves it usable
            if not await join_tokens.consume(self.store, token):
                if added is not None:
                    await self.store.remove_member(added.id)
                raise _refused(name, address)
            out["endpoints"] = [u for m in voting for u in m.client_urls]
        log.info("admitted %s (%s) as an etcd %s", name, address,
                 "member" if out["member"] else "client")
        return out


def _refused(name: str, address: str) -> TokenRefusedError:
    log.warning("refused a join of %s (%s): bad or used token", name, address)
    return TokenRefusedError("the join token is unknown, expired or already used",
                             hint="make a new one on a machine of the cluster: "
                                  "shipmate cluster join-token")


async def _ca(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_ADMITTER].ca_pem(),
                        content_type="application/x-pem-file")


async def _join(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValidationError("the join request is not a JSON object")
        out = await request.app[_ADMITTER].admit(body)
    except ValueError:
        return _error(400, ValidationError("the join request is not JSON"))
    except ShipmateError as exc:
        return _error(exc.status, exc)
    return web.json_response(out)


def _error(status: int, exc: ShipmateError) -> web.Response:
    return web.json_response({"error": {"code": "join", "message": exc.message,
                                        "hint": exc.hint or ""}}, status=status)


def add_join_routes(app: web.Application, admitter: Admitter) -> None:
    """``GET /v1/cluster/ca`` and ``POST /v1/cluster/join`` on the TCP API."""
    app[_ADMITTER] = admitter
    app.router.add_get("/v1/cluster/ca", _ca)
    app.router.add_post("/v1/cluster/join", _join)
