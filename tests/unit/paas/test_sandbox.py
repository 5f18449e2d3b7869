"""Sandboxed builds: the fence rules (pure), the sandbox's choice of network and cache
address, and the bounds of a build (time, image size, output)."""

import asyncio
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from shipmate import config
from shipmate.engine.base import ImageInfo
from shipmate.errors import ValidationError
from shipmate.paas.build import BuildError, BuildLimits, build
from shipmate.paas.builders.fence import CHAIN, fence, listening_ports, removal
from shipmate.paas.sandbox import BuildSandbox
from shipmate.testing import FakeEngine


def _listing(*rules: str) -> str:
    """``iptables -S SHIPMATE-BUILD`` as it prints a chain with ``rules``."""
    return "\n".join([f"-N {CHAIN}", *rules, ""])


def test_the_fence_lets_builds_reach_only_the_cache_on_the_gateway() -> None:
    wall = fence("172.18.0.0/16", "172.18.0.1")
    assert wall.rules([3142]) == [
        f"-A {CHAIN} -d 172.18.0.1/32 -p tcp -m tcp --dport 3142 -j ACCEPT",
        f"-A {CHAIN} -p tcp -j REJECT --reject-with tcp-reset",
        f"-A {CHAIN} -j REJECT --reject-with icmp-port-unreachable"]
    assert wall.jump() == ("INPUT", "-s", "172.18.0.0/16", "-j", CHAIN)
    # a new chain is written whole, in one commit that starts by flushing it
    text = wall.plan("", [3142], set())
    assert text == "\n".join(["*filter", f":{CHAIN} - [0:0]", *wall.rules([3142]),
                              "COMMIT", ""])
    # no cache on this machine: nothing of the host is reachable
    assert [r.split()[-1] for r in wall.rules([])] == ["tcp-reset", "icmp-port-unreachable"]


def test_a_fence_that_holds_its_rules_is_left_alone() -> None:
    wall = fence("172.18.0.0/16", "172.18.0.1")
    assert wall.plan(_listing(*wall.rules([3142])), [3142], set()) is None
    # another daemon's port that something still listens on stays, in the same order
    both = _listing(*wall.rules([3142, 40001]))
    assert wall.plan(both, [3142], {40001}) is None
    assert wall.plan(both, [40001], {3142}) is None


def test_installing_the_fence_again_drops_what_piled_up() -> None:
    wall = fence("172.21.0.0/16", "172.21.0.1")
    accept = f"-A {CHAIN} -d 172.21.0.1/32 -p tcp -m tcp --dport %d -j ACCEPT"
    piled = _listing(accept % 39617, accept % 35263, accept % 3142, accept % 3142,
                     f"-A {CHAIN} -d 172.18.0.1/32 -p tcp -m tcp --dport 3142 -j ACCEPT",
                     accept % 40001, *wall.rules([])[-2:])
    text = wall.plan(piled, [3142], listening={40001, 22})
    assert text is not None
    assert [ln for ln in text.splitlines() if ln.startswith("-A")] == wall.rules([3142, 40001])
    # the rejects out of order are put back last
    reordered = _listing(*wall.rules([])[-2:], accept % 3142)
    assert wall.plan(reordered, [3142], set()) == wall.plan("", [3142], set())


def test_a_stopping_daemon_takes_out_only_its_own_port() -> None:
    wall = fence("172.21.0.0/16", "172.21.0.1")
    listing = _listing(*wall.rules([3142, 40001]))
    assert removal(CHAIN, listing, [3142]) == "\n".join([
        "*filter", f"-D {CHAIN} -d 172.21.0.1/32 -p tcp -m tcp --dport 3142 -j ACCEPT",
        "COMMIT", ""])
    assert removal(CHAIN, listing, [5555]) is None
    assert removal(CHAIN, "", [3142]) is None


def test_listening_ports_are_read_from_the_socket_tables() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:0C46 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0\n"
        "   1: 0100007F:9C41 0100007F:0C46 01 00000000:00000000 00:00000000 00000000 0\n")
    tcp6 = (
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A\n")
    assert listening_ports(tcp, tcp6) == {3142, 22}
    assert listening_ports("") == set()


@pytest.mark.parametrize(("subnet", "gateway"), [
    ("172.18.0.0/16", "10.0.0.1"), ("fd00::/64", "fd00::1"), ("x; rm", "172.18.0.1"),
    ("172.18.0.0/16", "-j ACCEPT")])
def test_the_fence_refuses_what_it_cannot_express(subnet: str, gateway: str) -> None:
    with pytest.raises(ValidationError):
        fence(subnet, gateway)
    with pytest.raises(ValidationError):
        fence("172.18.0.0/16", "172.18.0.1", "X; -j ACCEPT")


async def test_without_the_sandbox_builds_use_the_host_network(tmp_path: Path) -> None:
    cfg = config.load({}, state_dir=tmp_path, build_sandbox=False, cache_port=3999)
    network, args = await BuildSandbox(FakeEngine(), cfg).settings()
    assert network == "host" and args["APT_PROXY"] == "http://127.0.0.1:3999"


async def test_a_cache_on_loopback_only_is_not_offered_to_sandboxed_builds(
        tmp_path: Path) -> None:
    cfg = config.load({}, state_dir=tmp_path, cache_bind="127.0.0.1")
    engine = FakeEngine()
    net = await engine.ensure_network("shipmate-build", internal=True)
    assert BuildSandbox(engine, cfg).cache_address(net) is None
    cfg = config.load({}, state_dir=tmp_path)
    assert BuildSandbox(engine, cfg).cache_address(net) == net.gateway


def _tree() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"web: sleep 1000\n"
        info = tarfile.TarInfo("Procfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Engine(FakeEngine):
    def __init__(self, *, lines: int = 2, delay: float = 0.0, size: int = 0) -> None:
        super().__init__()
        self.lines, self.delay, self.size, self.network = lines, delay, size, ""

    async def build(self, context: str, tag: str, **kw: Any) -> str:
        self.network = kw["network_mode"]
        for i in range(self.lines):
            kw["on_line"](f"line {i} " + "x" * 90)
        await asyncio.sleep(self.delay)
        return self.add_image(tag).id

    async def image(self, name: str) -> ImageInfo | None:
        info = await super().image(name)
        return None if info is None else ImageInfo(info.id, info.tags, info.labels, self.size)


async def test_a_build_runs_on_the_given_network() -> None:
    engine = _Engine()
    result = await build(engine, "app1", "a" * 40, _tree(), lambda _: None, buildargs={},
                         network="shipmate-build")
    assert engine.network == "shipmate-build" and result.builder == "procfile"


async def test_a_build_past_its_time_is_stopped() -> None:
    with pytest.raises(BuildError, match=r"took longer than 0\.2s and was stopped"):
        await build(_Engine(delay=30), "app1", "a" * 40, _tree(), lambda _: None,
                    buildargs={}, network="n", limits=BuildLimits(timeout=0.2))


async def test_an_image_past_its_size_is_refused_and_removed() -> None:
    engine = _Engine(size=3 * 2**20)
    with pytest.raises(BuildError, match="is 3 MiB, more than the 1 MiB"):
        await build(engine, "app1", "a" * 40, _tree(), lambda _: None, buildargs={},
                    network="n", limits=BuildLimits(max_image_bytes=2**20))
    assert await FakeEngine.image(engine, "shipmate/app-app1:aaaaaaaaaaaa") is None


async def test_build_output_past_its_bound_is_left_out_once_said() -> None:
    lines: list[str] = []
    await build(_Engine(lines=100), "app1", "a" * 40, _tree(), lines.append, buildargs={},
                network="n", limits=BuildLimits(max_output_bytes=1000))
    output = [ln for ln in lines if ln.startswith("       line")]
    assert len(output) == 10  # 100 bytes a line
    assert sum("left out" in ln for ln in lines) == 1
