"""``shipmate cluster init | join-token | join | leave | remove | members | supervise |
sign``: real machines in a cluster over TLS (docs/cluster.md, "Real machines").

``cluster up`` runs the same ``init`` and ``join`` inside its Docker-in-Docker machines.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable

from shipmate.cli import output
from shipmate.cli.registry import Context, arg, command
from shipmate.cluster import spec as sp  # pure: names and defaults for the arguments

_LOG_DIR = arg("--log-dir", default="",
               help="where etcd.log and daemon.log go (default STATE_DIR/log)")
_API_PORT = arg("--api-port", type=int, default=7787,
                help="the TCP API (joins, images) on every machine (default 7787)")


def _own_address(peer: str | None = None) -> str:
    """The address this machine reaches ``peer`` from (or its hostname's address)."""
    try:
        if peer:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((peer, 9))  # no packet is sent: this only picks the route
                return str(s.getsockname()[0])
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""


def _address(given: str, peer: str | None = None) -> str:
    from shipmate.errors import ValidationError

    if given:
        return given
    address = _own_address(peer)
    if not address or address.startswith("127."):
        raise ValidationError("cannot tell this machine's address on the cluster network",
                              hint="give it: --address 10.0.0.5")
    return address


def _progress(ctx: Context) -> Callable[[str], None]:
    return (lambda _: None) if ctx.format == "json" else output.step


@command("cluster init", "make this machine the first of a cluster (CA, etcd with TLS, daemon)",
         arg("--name", default="", help="this machine's name (default: the hostname)"),
         arg("--address", default="", help="this machine's address the others reach"),
         arg("--cluster-name", default=sp.DEFAULT_NAME, help="the cluster's name"),
         _API_PORT, _LOG_DIR)
async def cluster_init(ctx: Context, args: argparse.Namespace) -> int:
    """Stop a single-machine daemon, then start this machine's etcd and daemon over TLS."""
    from shipmate.cluster import membership

    name = args.name or socket.gethostname()
    address = _address(args.address)
    _stop_single_machine_daemon(ctx)
    mc = await membership.init(ctx.config.state_dir, cluster=args.cluster_name, name=name,
                               address=address, api_port=args.api_port, log_dir=args.log_dir,
                               progress=_progress(ctx))
    await _wait_daemon(ctx)
    if ctx.format == "json":
        output.as_json({"cluster": mc.cluster, "name": mc.name, "address": mc.address})
        return 0
    output.header(f"Cluster {mc.cluster} is initialised on {mc.name} ({mc.address})")
    output.detail("add machines: `shipmate cluster join-token` here, then on the new machine "
                  f"`shipmate cluster join {mc.address} TOKEN`")
    return 0


def _stop_single_machine_daemon(ctx: Context) -> None:
    """A daemon of `shipmate up` (SQLite store) would hold the ports the cluster's needs."""
    from shipmate.cluster import machine as mach
    from shipmate.daemon import process

    if mach.load(ctx.config.state_dir) is None and process.read_pid(ctx.config) is not None:
        # its units and nginx keep running: the cluster's daemon adopts them
        output.step("Stopping the single-machine daemon (shipmate up); the apps keep running")
        process.stop(ctx.config, handover=True)


async def _wait_daemon(ctx: Context, timeout: float = 90.0) -> None:
    import asyncio
    import time

    from shipmate.errors import ClusterError, ShipmateError

    deadline = time.monotonic() + timeout
    while True:
        try:
            await ctx.client().request("GET", "/v1/status", timeout=3)
            return
        except ShipmateError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"the daemon does not answer: {exc.message}",
                                   hint="see daemon.log in the machine's log directory") from None
        await asyncio.sleep(0.5)


@command("cluster join-token", "print a short-lived, single-use token to join this cluster",
         arg("--ttl", type=float, default=900.0, help="seconds it stays valid (default 900)"))
async def cluster_join_token(ctx: Context, args: argparse.Namespace) -> int:
    """Ask the daemon for a token (its hash goes into the store)."""
    from shipmate.cluster.join_tokens import check_ttl

    out = await ctx.client().request("POST", "/v1/cluster/join-tokens",
                                     json_body={"ttl": check_ttl(args.ttl)})
    if ctx.format == "json":
        output.as_json(out)
        return 0
    print(out["token"])
    where = out.get("address") or "THE-INIT-MACHINE"
    print(f"# valid until {out['expires']}, once; on the new machine: "
          f"shipmate cluster join {where} TOKEN", file=sys.stderr)
    return 0


@command("cluster join", "join the cluster whose first machine answers at ADDRESS",
         arg("signer", metavar="ADDRESS", help="address of the machine that ran cluster init"),
         arg("token", metavar="TOKEN", help="from `shipmate cluster join-token`"),
         arg("--name", default="", help="this machine's name (default: the hostname)"),
         arg("--address", default="", help="this machine's address the others reach"),
         _API_PORT, _LOG_DIR)
async def cluster_join(ctx: Context, args: argparse.Namespace) -> int:
    """Certificates signed, etcd member or client, daemon started."""
    from shipmate.cluster import membership

    name = args.name or socket.gethostname()
    address = _address(args.address, args.signer)
    _stop_single_machine_daemon(ctx)
    mc = await membership.join(ctx.config.state_dir, args.signer, args.token, name=name,
                               address=address, api_port=args.api_port, log_dir=args.log_dir,
                               progress=_progress(ctx))
    await _wait_daemon(ctx)
    if ctx.format == "json":
        output.as_json({"cluster": mc.cluster, "name": mc.name, "address": mc.address,
                        "etcd_member": mc.member})
        return 0
    output.header(f"{mc.name} ({mc.address}) joined cluster {mc.cluster}"
                  + (" as an etcd member" if mc.member else ""))
    return 0


@command("cluster leave", "take this machine out of its cluster (its units move elsewhere)")
async def cluster_leave(ctx: Context, args: argparse.Namespace) -> int:
    """Units stopped and lease revoked by the daemon, etcd member removed, all stopped."""
    from shipmate.cluster import machine as mach
    from shipmate.cluster import membership
    from shipmate.errors import DaemonUnavailableError, NotFoundError

    mc = mach.load(ctx.config.state_dir)
    if mc is None:
        raise NotFoundError("this machine is in no cluster")
    try:
        out = await ctx.client().request("POST", "/v1/cluster/leave", timeout=120)
        output.step(f"Stopped {len(out['units'])} unit(s); the scheduler places them elsewhere")
    except DaemonUnavailableError:
        output.step("The daemon is not running; its lease runs out by itself")
    if await membership.remove_own_member(ctx.config.state_dir, mc):
        output.step(f"Removed the etcd member {mc.name}")
    membership.forget(ctx.config.state_dir)
    output.header(f"{mc.name} left cluster {mc.cluster}")
    return 0


@command("cluster remove", "take another machine out (a dead one): lease and etcd member",
         arg("machine", metavar="MACHINE", help="its name, as in fleet list-machines"))
async def cluster_remove(ctx: Context, args: argparse.Namespace) -> int:
    """Through this machine's daemon."""
    out = await ctx.client().request("POST", "/v1/cluster/remove",
                                     json_body={"machine": args.machine}, timeout=60)
    if ctx.format == "json":
        output.as_json(out)
        return 0
    removed = out["members_removed"]
    output.step(f"Removed {args.machine}" + (" and its etcd member" if removed else ""))
    return 0


@command("cluster members", "list the etcd members and the machines that are up")
async def cluster_members(ctx: Context, args: argparse.Namespace) -> int:
    """One line per member, then the machines."""
    out = await ctx.client().request("GET", "/v1/cluster/members")
    if ctx.format == "json":
        output.as_json(out)
        return 0
    rows = [{"member": m["name"] or "(starting)", "id": m["id"],
             "role": "learner" if m["learner"] else "voter",
             "client": ",".join(m["client_urls"])} for m in out["members"]]
    output.table(rows, ["member", "id", "role", "client"])
    return 0


@command("cluster supervise", "run this machine's etcd member and daemon (cluster init/join "
         "start it; a boot script or a systemd unit runs it too)")
async def cluster_supervise(ctx: Context, args: argparse.Namespace) -> int:
    """Until SIGTERM or until this machine leaves its cluster."""
    import logging

    from shipmate.cluster import supervise

    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervise: %(message)s")

    return await supervise.supervise(ctx.config.state_dir)


@command("cluster sign", "sign a certificate request from stdin (on the CA machine)",
         arg("client", metavar="NAME", help="the client's or machine's name (e.g. operator)"),
         arg("--address", action="append", default=[],
             help="an address to name too (a machine's, when rotating the CA; repeatable)"))
async def cluster_sign(ctx: Context, args: argparse.Namespace) -> int:
    """For etcdctl, another host's `cluster status`, or a machine's new certificate: PEM
    certificate on stdout."""
    from shipmate.cluster import machine as mach
    from shipmate.cluster import membership

    addresses = [mach.validate_address(a) for a in args.address]
    sys.stdout.write(membership.sign_client(ctx.config.state_dir, sys.stdin.buffer.read(),
                                            args.client, addresses).decode())
    return 0
