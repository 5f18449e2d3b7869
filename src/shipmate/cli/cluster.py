"""``shipmate cluster up | down | status | kill | start | partition | heal | logs``: a local
multi-machine cluster of Docker-in-Docker nodes (see docs/cluster.md).

These talk to the host's Docker directly; no daemon is needed on the host. To run any other
command against a node's daemon: ``shipmate --cluster node-2 fleet list-machines``.
"""

from __future__ import annotations

import argparse
from typing import Any

from shipmate.cli import output
from shipmate.cli.registry import Context, arg, command
from shipmate.cluster import spec as sp  # pure: names and defaults for the arguments
from shipmate.errors import NotFoundError

_NAME = arg("--name", default=sp.DEFAULT_NAME,
            help=f"cluster name, prefix of its containers (default {sp.DEFAULT_NAME})")
_NODE = arg("node", help="node-1, node-2, ...")


@command(
    "cluster up", "build the node image and start a local cluster (nodes, etcd, daemons)",
    arg("--nodes", type=int, default=3, help="number of machines (default 3)"),
    _NAME,
    arg("--subnet", default=sp.DEFAULT_SUBNET, help=f"network (default {sp.DEFAULT_SUBNET})"),
    arg("--env", action="append", default=[], metavar="SHIPMATE_K=V",
        help="a daemon setting for every node (repeatable), e.g. SHIPMATE_AGENT_TTL=2"),
    arg("--image", action="append", dest="images", metavar="REF",
        help="an image to load into every node (repeatable; default: the base images)"),
    arg("--rebuild", action="store_true", help="rebuild the node image even when up to date"),
    arg("--apt-proxy", default="", help="apt proxy for the node image build"),
    arg("--etcd-members", type=int, default=sp.ETCD_MEMBERS, choices=(3, 5),
        help="how many machines become etcd members (default 3; the others are clients)"),
    arg("--no-join", action="store_true",
        help="start new machines but leave them out of the cluster (init or join them by "
             "hand; a new cluster's node-1 is not initialised either)"),
    arg("--verbose", "-v", action="store_true", help="show the image build's output"),
)
async def cluster_up(ctx: Context, args: argparse.Namespace) -> int:
    """Start (or complete) the cluster and print where everything is."""
    from shipmate.cluster import lifecycle
    from shipmate.engine.docker import DockerEngine

    opts = lifecycle.UpOptions(
        name=args.name, nodes=args.nodes, subnet=args.subnet, env=sp.parse_env(args.env),
        images=tuple(args.images or sp.DEFAULT_NODE_IMAGES), rebuild=args.rebuild,
        apt_proxy=args.apt_proxy, etcd_members=args.etcd_members, join=not args.no_join)
    quiet = ctx.format == "json"
    engine = DockerEngine(ctx.config.docker_host)
    try:
        result = await lifecycle.up(
            ctx.config, engine, opts, progress=(lambda _: None) if quiet else output.step,
            on_line=output.detail if args.verbose and not quiet else None)
    finally:
        await engine.close()
    timings = {k: round(v, 1) for k, v in result.seconds.items()}
    if quiet:
        output.as_json({"name": result.cluster.name, "image": result.image.ref,
                        "image_built": result.image.built, "started": list(result.started),
                        "loaded": {k: list(v) for k, v in result.loaded.items()},
                        "joined": list(result.joined),
                        "seconds": timings,
                        "nodes": [{"name": n.name, "address": n.address, "etcd": n.etcd}
                                  for n in result.cluster.nodes]})
        return 0
    output.header(f"Cluster {result.cluster.name} is up in {timings['total']} s "
                  f"(image {timings['image']} s, images loaded {timings['load']} s)")
    for n in result.cluster.nodes:
        output.detail(f"{n.name}  {n.address}" + ("  etcd member" if n.etcd else ""))
    output.detail(f"try: shipmate --cluster {result.cluster.nodes[0].name} fleet list-machines")
    return 0


@command("cluster down", "remove the cluster's nodes and network",
         _NAME, arg("--purge", action="store_true",
                    help="also remove the nodes' Docker volumes (the images loaded into them)"))
async def cluster_down(ctx: Context, args: argparse.Namespace) -> int:
    """Tear the cluster down."""
    from shipmate.cluster import lifecycle

    removed = await lifecycle.down(ctx.config, args.name, purge=args.purge)
    if removed:
        output.step(f"Removed {', '.join(removed)} and network {args.name}-cluster")
    else:
        output.step(f"No cluster {args.name} was running")
    return 0


def _daemon_text(daemon: dict[str, Any]) -> str:
    if "error" in daemon:
        return "down"
    failing = [k for k, v in daemon["components"].items() if v not in ("running", "ok")]
    return "up" + (f" ({', '.join(failing)} not running)" if failing else "")


@command("cluster status", "show nodes, addresses, etcd health and daemons", _NAME)
async def cluster_status(ctx: Context, args: argparse.Namespace) -> int:
    """One line per node; ``--format json`` for everything."""
    from shipmate.cluster import status

    data = await status.collect(ctx.config, args.name)
    if ctx.format == "json":
        output.as_json(data)
        return 0
    output.header(f"Cluster {data['name']} ({data['subnet']}), etcd quorum: "
                  f"{'yes' if data['etcd_quorum'] else 'NO'}")
    rows = [{"node": n["name"], "address": n["address"],
             "state": n["state"] if n["connected"] else f"{n['state']} (partitioned)",
             "etcd": n["etcd"]["health"] + (" leader" if n["etcd"]["leader"] else "")
             if n["etcd"] else "-",
             "daemon": _daemon_text(n["daemon"])} for n in data["nodes"]]
    output.table(rows, ["node", "address", "state", "etcd", "daemon"])
    return 0


@command("cluster kill", "SIGKILL a node (the whole machine)", _NODE, _NAME)
async def cluster_kill(ctx: Context, args: argparse.Namespace) -> int:
    """Fault injection: a machine dies."""
    from shipmate.cluster import nodes

    await nodes.kill(args.name, args.node)
    output.step(f"Killed {args.node}")
    return 0


@command("cluster start", "start a killed node again", _NODE, _NAME)
async def cluster_start(ctx: Context, args: argparse.Namespace) -> int:
    """The machine boots again: dockerd, its etcd member, the daemon."""
    from shipmate.cluster import nodes

    await nodes.start(args.name, args.node)
    output.step(f"Started {args.node}")
    return 0


@command("cluster partition", "cut a node off the cluster network", _NODE, _NAME)
async def cluster_partition(ctx: Context, args: argparse.Namespace) -> int:
    """Fault injection: the machine runs on but nobody reaches it, nor it anybody."""
    from shipmate.cluster import nodes

    await nodes.partition(args.name, args.node)
    output.step(f"Partitioned {args.node} (disconnected from {args.name}-cluster)")
    return 0


@command("cluster heal", "connect a partitioned node again", _NODE, _NAME)
async def cluster_heal(ctx: Context, args: argparse.Namespace) -> int:
    """End a partition."""
    from shipmate.cluster import nodes

    await nodes.heal(args.name, args.node)
    output.step(f"Healed {args.node}")
    return 0


@command("cluster logs", "print a node's log (daemon, etcd, dockerd, node, supervise)",
         _NODE, _NAME,
         arg("--service", "-s", default="daemon",
             choices=("daemon", "etcd", "dockerd", "node", "supervise")),
         arg("--lines", "-n", type=int, default=50, help="last N lines (default 50)"))
async def cluster_logs(ctx: Context, args: argparse.Namespace) -> int:
    """The node's logs live on the host, next to its daemon socket."""
    sp.validate_cluster_name(args.name)
    path = sp.host_dir(ctx.config.state_dir, args.name, sp.validate_node_name(args.node))
    log = path / f"{args.service}.log"
    if not log.exists():
        raise NotFoundError(f"no {args.service} log for {args.node} at {log}",
                            hint="is the cluster up? shipmate cluster status")
    for line in log.read_text(errors="replace").splitlines()[-args.lines:]:
        print(line)
    return 0
