"""``cluster up`` and ``cluster down`` from start to finish: node image, network, nodes,
images into the nodes, the etcd cluster, a daemon answering on every node."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shipmate.cluster import etcd, formation, images, nodes, status
from shipmate.cluster import spec as sp
from shipmate.config import Config
from shipmate.engine.base import Engine

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class UpOptions:
    """What ``cluster up`` was asked for."""

    name: str = sp.DEFAULT_NAME
    nodes: int = 3
    subnet: str = sp.DEFAULT_SUBNET
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    images: Sequence[str] = sp.DEFAULT_NODE_IMAGES
    rebuild: bool = False
    apt_proxy: str = ""
    etcd_members: int = sp.ETCD_MEMBERS
    join: bool = True  # False: new machines start but are left to join by hand


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What ``cluster up`` did, with timings (seconds)."""

    cluster: sp.Cluster
    image: images.NodeImage
    started: tuple[str, ...]  # nodes (re)created now; the others already ran
    loaded: Mapping[str, tuple[str, ...]]  # node -> images loaded into it now
    joined: tuple[str, ...]  # nodes that ran `cluster join` now
    seconds: Mapping[str, float]


async def up(config: Config, engine: Engine, opts: UpOptions, *, progress: Progress = _quiet,
             on_line: Progress | None = None) -> UpResult:
    """Bring the cluster up (idempotent: nodes already running from the same image stay)."""
    t0 = time.monotonic()
    cluster = sp.plan(opts.name, opts.nodes, opts.subnet, opts.etcd_members)
    image = await images.ensure_node_image(
        engine, cache_dir=Path(config.state_dir) / "cluster" / "wheels", progress=progress,
        on_line=on_line, force=opts.rebuild, apt_proxy=opts.apt_proxy)
    t_image = time.monotonic()
    await _drop_extra_nodes(cluster)
    await nodes.ensure_network(cluster)
    started: list[str] = []
    for node in cluster.nodes:  # one by one: `docker run` is quick, and the log reads in order
        progress(f"Starting {node.name} ({node.address}) ...")
        if await nodes.start_node(cluster, node, image.ref, config.state_dir, opts.env):
            started.append(node.name)
        else:
            progress(f"{node.name} already runs {image.ref}")
    t_nodes = time.monotonic()
    loaded = await _prepare_nodes(cluster, started, opts.images, progress)
    t_images = time.monotonic()
    joined = await formation.form(cluster, config.state_dir, join=opts.join, progress=progress)
    t_form = time.monotonic()
    formed = cluster if opts.join else await _formed(cluster)
    progress(f"Waiting for etcd ({len([n for n in formed.nodes if n.etcd])} members) ...")
    await etcd.wait_healthy(formed, config.state_dir)
    t_etcd = time.monotonic()
    progress("Waiting for the Shipmate daemons ...")
    await status.wait_daemons(config, formed)
    t_end = time.monotonic()
    return UpResult(cluster, image, tuple(started), loaded, tuple(joined), {
        "image": t_image - t0, "nodes": t_nodes - t_image, "load": t_images - t_nodes,
        "form": t_form - t_images, "etcd": t_etcd - t_form, "daemons": t_end - t_etcd,
        "total": t_end - t0})


async def _formed(cluster: sp.Cluster) -> sp.Cluster:
    """Only the nodes in the cluster (with ``join=False`` some are left out)."""
    inside = [n for n in cluster.nodes if await formation.in_cluster(n)]
    return dataclasses.replace(cluster, nodes=tuple(inside))


async def _drop_extra_nodes(cluster: sp.Cluster) -> None:
    """A smaller ``--nodes`` than before removes the nodes beyond it."""
    wanted = {n.name for n in cluster.nodes}
    existing = await nodes.node_containers(cluster.name)
    extra = [c["Id"] for name, c in existing.items() if name not in wanted]
    if extra:
        from shipmate.cluster import docker

        await docker.run(["rm", "-f", "-v", *extra])


async def _prepare_nodes(cluster: sp.Cluster, started: Sequence[str], wanted: Sequence[str],
                         progress: Progress) -> dict[str, tuple[str, ...]]:
    """In parallel on every node: wait for its dockerd, clear what a previous cluster left in
    a fresh node's volume, and load the host's images it lacks."""
    available = await images.host_images(wanted)

    async def one(node: sp.Node) -> tuple[str, ...]:
        await nodes.wait_dockerd(node)
        if node.name in started:
            await nodes.remove_inner_containers(node)
        loaded = await images.load_into(node.container, available)
        if loaded:
            progress(f"Loaded {', '.join(loaded)} into {node.name}")
        return tuple(loaded)

    if available:
        progress(f"Loading images into the nodes where missing: {', '.join(available)}")
    results = await asyncio.gather(*(one(n) for n in cluster.nodes))
    return {n.name: r for n, r in zip(cluster.nodes, results, strict=True)}


async def down(config: Config, name: str, *, purge: bool = False) -> list[str]:
    """Remove the cluster's nodes and network (and with ``purge`` their Docker volumes)."""
    sp.validate_cluster_name(name)
    return await nodes.remove_all(name, config.state_dir, purge=purge)
