"""The cluster routes of the daemon's API (``shipmate cluster join-token | leave | remove |
members`` talk to these, on a machine of a cluster made by ``cluster init``/``join``)::

    POST /v1/cluster/join-tokens  {"ttl": seconds}    -> {"token", "expires"}
    POST /v1/cluster/leave                            this machine: units stopped, lease revoked
    POST /v1/cluster/remove       {"machine": NAME}   another machine: lease and etcd member
    GET  /v1/cluster/members                          etcd members and live machines
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate.cluster import ca, join_tokens
from shipmate.cluster import machine as mach
from shipmate.config import Config
from shipmate.errors import ConflictError, NotFoundError
from shipmate.httpapi.server import json_body
from shipmate.scheduler.registry import Registry, machine_key
from shipmate.store.base import Store
from shipmate.store.metered import backend

if TYPE_CHECKING:
    from shipmate.agent.agent import Agent
    from shipmate.store.etcd import EtcdStore

_STORE: web.AppKey[Store] = web.AppKey("cluster_store")
_AGENT: web.AppKey[Agent] = web.AppKey("cluster_agent")
_CONFIG: web.AppKey[Config] = web.AppKey("cluster_config")


def _etcd(request: web.Request) -> EtcdStore:
    from shipmate.store.etcd import EtcdStore

    store = backend(request.app[_STORE])  # the daemon's store is metered
    config = request.app[_CONFIG]
    if not isinstance(store, EtcdStore) or not config.cluster_tls_dir:
        raise ConflictError("this machine is not in a cluster made by `shipmate cluster init`",
                            hint="run `shipmate cluster init` first (docs/cluster.md)")
    return store


async def join_token(request: web.Request) -> web.Response:
    """A new single-use token pinned to this cluster's CA."""
    store = _etcd(request)
    body = await json_body(request)
    ttl = float(body.get("ttl", join_tokens.DEFAULT_TTL))
    p = ca.Pki(Path(request.app[_CONFIG].cluster_tls_dir))
    out = await join_tokens.create(store, ca.fingerprint(p.ca_cert.read_bytes()), ttl)
    mc = mach.load(request.app[_CONFIG].state_dir)
    signer = mc.address if mc is not None and p.can_sign() else ""
    return web.json_response({**out, "address": signer})


async def leave(request: web.Request) -> web.Response:
    """This machine stops its units and gives up its lease (the CLI then stops etcd and the
    daemon and removes the member)."""
    _etcd(request)
    units = await request.app[_AGENT].leave()
    return web.json_response({"units": units})


async def remove(request: web.Request) -> web.Response:
    """Take another machine out: revoke its lease (its units are placed elsewhere now) and
    remove its etcd member."""
    store = _etcd(request)
    name = mach.validate_name(str((await json_body(request)).get("machine", "")))
    if name == request.app[_CONFIG].machine_id:
        raise ConflictError("that is this machine", hint="use `shipmate cluster leave`")
    kv = await store.get(machine_key(name))
    members = [m for m in await store.members() if m.name == name]
    if kv is None and not members:
        raise NotFoundError(f"no machine {name} in the cluster",
                            hint="see `shipmate fleet list-machines`, `cluster members`")
    if kv is not None and kv.lease:
        await store.revoke(kv.lease)
    for m in members:
        await store.remove_member(m.id)
    return web.json_response({"machine": name, "lease_revoked": kv is not None,
                              "members_removed": [m.as_dict() for m in members]})


async def members(request: web.Request) -> web.Response:
    """The etcd members and the machines that are up."""
    store = _etcd(request)
    found = await store.members()
    machines = await Registry(store).machines()
    out: dict[str, Any] = {"members": [m.as_dict() for m in found],
                           "machines": {k: m.public_ip for k, m in sorted(machines.items())}}
    return web.json_response(out)


def add_cluster_routes(app: web.Application, store: Store, agent: Agent,
                       config: Config) -> None:
    """Mount the cluster routes."""
    app[_STORE], app[_AGENT], app[_CONFIG] = store, agent, config
    app.router.add_post("/v1/cluster/join-tokens", join_token)
    app.router.add_post("/v1/cluster/leave", leave)
    app.router.add_post("/v1/cluster/remove", remove)
    app.router.add_get("/v1/cluster/members", members)
