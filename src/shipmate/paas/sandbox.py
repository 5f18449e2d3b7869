"""Where builds run: an internal Docker network of their own, fenced (:mod:`.builders.fence`)
so that a ``RUN`` step reaches the package cache on the network's gateway and nothing else:
not the host's services, not other machines, not the store.

This is the I/O half: it makes the network through the engine and brings the firewall rules
to what they should be with ``iptables-restore`` (checked before every build, so rules flushed
by hand come back; a stopping daemon takes its cache port out, :meth:`BuildSandbox.remove`).
Without ``iptables`` (or the right to use it) builds are refused, not run unfenced; the
``build_sandbox`` setting turns the sandbox off explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from shipmate.config import Config
from shipmate.engine.base import Engine, NetworkInfo
from shipmate.errors import ShipmateError
from shipmate.paas.builders.fence import CHAIN, Fence, fence, listening_ports, removal

log = logging.getLogger(__name__)

_HINT = ("install iptables and run the daemon as root, or set SHIPMATE_BUILD_SANDBOX=0 to "
         "build on the host's network (not isolated)")


class SandboxError(ShipmateError):
    """The build network could not be made or fenced; no build runs unfenced."""

    status = 503
    code = "build_sandbox"


class BuildSandbox:
    """The fenced build network of this machine."""

    def __init__(self, engine: Engine, config: Config, *, chain: str = CHAIN) -> None:
        self.engine, self.config, self.chain = engine, config, chain
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """False when ``build_sandbox`` is off: builds use the host's network."""
        return bool(self.config.build_sandbox)

    async def network(self) -> NetworkInfo:
        """The build network, made and fenced if it was not yet."""
        name = self.config.build_network
        async with self._lock:
            net = await self.engine.ensure_network(name, internal=True,
                                                   labels={"shipmate.role": "build"})
            if not net.internal or not net.gateway:
                raise SandboxError(
                    f"Docker network {name} exists but is not an internal bridge network",
                    hint=f"remove it (docker network rm {name}) or set SHIPMATE_BUILD_NETWORK")
            await self._install(fence(net.subnet, net.gateway, self.chain), name)
            return net

    async def remove(self) -> None:
        """Take this daemon's cache port out of the fence (at shutdown); what other daemons
        of this host accept, the rejects and the jump stay (:func:`.fence.removal`)."""
        if not self.enabled or not self._ports():
            return
        try:
            listing = await self._listing()
            text = removal(self.chain, listing, self._ports())
            if text is not None:
                await self._restore(text, "the build network")
        except SandboxError as exc:
            log.warning("build sandbox: %s", exc)

    async def _install(self, wall: Fence, name: str) -> None:
        """Make the chain hold what :meth:`.Fence.plan` says (one commit), then make sure
        ``INPUT`` jumps to it: added last, so it never points at an unfinished chain."""
        listing = await self._listing()
        text = wall.plan(listing, self._ports(), listening_ports(*_proc_tcp()))
        if text is not None:
            await self._restore(text, name)
            log.info("build sandbox: %s now accepts %s", wall.chain,
                     sorted(wall.accepted(text)) or "nothing")
        jump = wall.jump()
        if (await _run(["iptables", "-w", "5", "-C", *jump]))[0] == 0:
            return
        code, _, err = await _run(["iptables", "-w", "5", "-I", jump[0], "1", *jump[1:]])
        if code != 0:
            raise SandboxError(f"cannot fence build network {name}: iptables: {err}",
                               hint=_HINT)

    async def _listing(self) -> str:
        """The chain's rules now (``iptables -S``); empty when it does not exist yet."""
        code, out, _ = await _run(["iptables", "-w", "5", "-S", self.chain])
        return out if code == 0 else ""

    async def _restore(self, text: str, name: str) -> None:
        code, _, err = await _run(["iptables-restore", "-w", "5", "--noflush"], text)
        if code != 0:
            raise SandboxError(f"cannot fence build network {name}: iptables-restore: {err}",
                               hint=_HINT)

    def _ports(self) -> tuple[int, ...]:
        return (self.config.cache_port,) if self.config.cache else ()

    async def settings(self) -> tuple[str, dict[str, str]]:
        """The network a build runs on and its build arguments (the package cache's
        settings, when builds can reach it)."""
        from shipmate.cache import build_settings

        if not self.enabled:
            host: str | None = "127.0.0.1" if self.config.cache else None
            network = "host"
        else:
            net = await self.network()
            host, network = self.cache_address(net), net.name
        return network, (dict(build_settings(host, self.config.cache_port)) if host else {})

    def cache_address(self, net: NetworkInfo) -> str | None:
        """Where builds on ``net`` reach the package cache (None: it does not listen there)."""
        if not self.config.cache:
            return None
        if self.config.cache_bind not in ("0.0.0.0", "::", "", net.gateway):
            log.warning("the package cache listens on %s only: builds on %s cannot reach it",
                        self.config.cache_bind, net.name)
            return None
        return net.gateway


async def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """Run an iptables tool: its exit code, output and error text."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise SandboxError(f"cannot fence the build network: {argv[0]}: {exc.strerror}",
                           hint=_HINT) from exc
    out, err = await proc.communicate(None if stdin is None else stdin.encode())
    return (proc.returncode or 0, out.decode(errors="replace"),
            err.decode(errors="replace").strip())


def _proc_tcp() -> list[str]:
    """This host's TCP socket tables (the daemon shares the host's network namespace, as
    iptables needs)."""
    tables = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            tables.append(Path(path).read_text())
    return tables
