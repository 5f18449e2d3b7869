"""Where builds run: an internal Docker network of their own, fenced (:mod:`.builders.fence`)
so that a ``RUN`` step reaches the package cache on the network's gateway and nothing else:
not the host's services, not other machines, not the store.

This is the I/O half: it makes the network through the engine and adds the missing firewall
rules with ``iptables`` (checked before every build, so rules flushed by hand come back).
Without ``iptables`` (or the right to use it) builds are refused, not run unfenced; the
``build_sandbox`` setting turns the sandbox off explicitly.
"""

from __future__ import annotations

import asyncio
import logging

from shipmate.config import Config
from shipmate.engine.base import Engine, NetworkInfo
from shipmate.errors import ShipmateError
from shipmate.paas.builders.fence import fence_rules, iptables_argv

log = logging.getLogger(__name__)

_HINT = ("install iptables and run the daemon as root, or set SHIPMATE_BUILD_SANDBOX=0 to "
         "build on the host's network (not isolated)")


class SandboxError(ShipmateError):
    """The build network could not be made or fenced; no build runs unfenced."""

    status = 503
    code = "build_sandbox"


class BuildSandbox:
    """The fenced build network of this machine."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine, self.config = engine, config
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
            ports = (self.config.cache_port,) if self.config.cache else ()
            for rule in fence_rules(net.subnet, net.gateway, ports):
                if (await _iptables(iptables_argv(rule, "check")))[0] == 0:
                    continue
                if rule.chain != "INPUT":  # fails when the chain exists: fine
                    await _iptables(["iptables", "-w", "5", "-N", rule.chain])
                code, err = await _iptables(iptables_argv(rule, "add"))
                if code != 0:
                    raise SandboxError(f"cannot fence build network {name}: iptables: {err}",
                                       hint=_HINT)
                log.info("build sandbox: added %s %s", rule.chain, " ".join(rule.spec))
            return net

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


async def _iptables(argv: list[str]) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise SandboxError(f"cannot fence the build network: {argv[0]}: {exc.strerror}",
                           hint=_HINT) from exc
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace").strip()
