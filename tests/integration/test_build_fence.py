"""The build fence with the real iptables: installing it again leaves the rules of once,
what piled up goes, and a stopping daemon takes out its own port only. Each test fences a
network and a chain of its own, so the shared ``SHIPMATE-BUILD`` of running daemons is not
touched."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shipmate import config
from shipmate.engine.docker import DockerEngine
from shipmate.paas.sandbox import BuildSandbox


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True)


def _rules(chain: str) -> list[str]:
    res = _iptables("-S", chain)
    assert res.returncode == 0, res.stderr
    return [ln for ln in res.stdout.splitlines() if ln.startswith("-A ")]


def _jumps(chain: str) -> list[str]:
    return [ln for ln in _iptables("-S", "INPUT").stdout.splitlines() if ln.endswith(chain)]


@contextlib.contextmanager
def _listening() -> Iterator[int]:
    """A port something listens on (another daemon's cache), while the block runs."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sandbox(docker_host: str, tmp_path: Path) -> AsyncIterator[BuildSandbox]:
    if subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True).returncode:
        pytest.skip("iptables cannot be used here")
    tag = uuid.uuid4().hex[:8]
    chain, network = f"SMTEST-{tag.upper()}", f"sm-test-build-{tag}"
    cfg = config.load({}, state_dir=tmp_path, build_network=network, cache_port=_free_port())
    engine = DockerEngine(docker_host)
    try:
        yield BuildSandbox(engine, cfg, chain=chain)
    finally:
        for jump in _jumps(chain):
            _iptables("-D", *jump.split()[1:])
        _iptables("-F", chain)
        _iptables("-X", chain)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
        await engine.close()


async def test_installing_the_fence_twice_leaves_the_rules_of_once(
        sandbox: BuildSandbox) -> None:
    net = await sandbox.network()
    once = _rules(sandbox.chain)
    port = sandbox.config.cache_port
    assert once == [
        f"-A {sandbox.chain} -d {net.gateway}/32 -p tcp -m tcp --dport {port} -j ACCEPT",
        f"-A {sandbox.chain} -p tcp -j REJECT --reject-with tcp-reset",
        f"-A {sandbox.chain} -j REJECT --reject-with icmp-port-unreachable"]
    assert _jumps(sandbox.chain) == [f"-A INPUT -s {net.subnet} -j {sandbox.chain}"]
    await sandbox.network()
    await BuildSandbox(sandbox.engine, sandbox.config, chain=sandbox.chain).network()
    assert _rules(sandbox.chain) == once
    assert len(_jumps(sandbox.chain)) == 1


async def test_what_piled_up_goes_and_a_stopping_daemon_takes_its_port_only(
        sandbox: BuildSandbox) -> None:
    net = await sandbox.network()
    chain, gw = sandbox.chain, net.gateway
    with _listening() as live:
        for port in (_free_port(), live, _free_port()):  # two daemons that died, one alive
            _iptables("-I", chain, "1", "-d", f"{gw}/32", "-p", "tcp", "--dport", str(port),
                      "-j", "ACCEPT")
        await sandbox.network()
        kept = sorted([sandbox.config.cache_port, live])
        assert _rules(chain) == [
            f"-A {chain} -d {gw}/32 -p tcp -m tcp --dport {p} -j ACCEPT" for p in kept
        ] + _rules(chain)[-2:]
        assert len(_rules(chain)) == 4
        await sandbox.remove()
        assert _rules(chain) == [
            f"-A {chain} -d {gw}/32 -p tcp -m tcp --dport {live} -j ACCEPT",
            f"-A {chain} -p tcp -j REJECT --reject-with tcp-reset",
            f"-A {chain} -j REJECT --reject-with icmp-port-unreachable"]
        assert _jumps(chain) == [f"-A INPUT -s {net.subnet} -j {chain}"]
        await sandbox.remove()  # again: nothing left to take out
        assert len(_rules(chain)) == 3
