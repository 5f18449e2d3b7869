"""Health-gated replacement and in-place updates of one container.

start-first: create the new container under a temporary name, start it, wait until it is
healthy (its health check passes, or it stays running for ``running_for`` seconds), then stop
and remove the old one and give the new one its name back (``docker rename``). stop-first (a
fixed host port both would bind, or asked for): stop the old one first, same gate; if the new
one fails, it is removed and the old one started again. Either way a failed replacement keeps
the old container. A restart policy alone changes in place (``docker update``).

This is the one converge engine: ``shipmate apply`` (:mod:`.apply`) and the agent's
``.container`` units (:mod:`shipmate.agent.containers`, which ``apply --via-daemon`` feeds)
both replace through :class:`Replacer`. What it converges is a :class:`Target`: a spec (whose
name is the container's) and its health gate.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping

from shipmate.clock import Clock
from shipmate.converge.plan import Action
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError
from shipmate.spec.container import SPEC_HASH_LABEL, ContainerSpec, spec_hash
from shipmate.spec.unitshipmate import RUNNING_FOR, WAIT

LOG_TAIL = 8
NEXT = ".next-"  # marks the temporary name of a replacement's new container


@dataclasses.dataclass(frozen=True)
class Target:
    """One container to converge: its spec (``spec.name`` is the container's name) and how
    long its health gate waits."""

    spec: ContainerSpec
    running_for: float = RUNNING_FOR
    wait: float = WAIT

    @property
    def name(self) -> str:
        """The container's name."""
        return self.spec.name


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one action went."""

    action: Action
    ok: bool
    message: str
    container_id: str = ""


class Replacer:
    """Replaces and updates containers through an engine, gated on health."""

    def __init__(self, engine: Engine, clock: Clock, report: Callable[[str], None],
                 poll: float = 0.5) -> None:
        self.engine = engine
        self.clock = clock
        self.report = report
        self.poll = poll

    async def update(self, action: Action, target: Target,
                     labels: Mapping[str, str]) -> Outcome:
        """Change in place what Docker can: restart policy, running state."""
        fields = {c.field for c in action.changes}
        cid = action.container_id
        if "restart" in fields:
            self.report(f"update {target.name}: restart {target.spec.restart}")
            await self.engine.update(cid, restart=target.spec.restart)
        if "state" in fields:
            self.report(f"start {target.name}")
            await self.engine.start(cid)
            failure = await self.gate(cid, target)
            if failure:
                return Outcome(action, False, f"{target.name}: started but {failure}"
                               + await self._tail(cid), cid)
        return Outcome(action, True, f"{target.name} updated in place", cid)

    async def create(self, action: Action, target: Target, labels: Mapping[str, str], *,
                     gated: bool) -> Outcome:
        """Create and start ``target`` where it has no container; with ``gated``, also wait
        until it is healthy (something waits for it: a dependent, a unit's first start)."""
        self.report(f"create {target.name}")
        cid = await self.engine.create(target.spec, extra_labels=labels)
        await self.engine.start(cid)
        if gated:
            failure = await self.gate(cid, target)
            if failure:
                return Outcome(action, False, f"{target.name} created but {failure}"
                               + await self._tail(cid), cid)
        return Outcome(action, True, f"{target.name} created", cid)

    async def replace(self, action: Action, target: Target,
                      labels: Mapping[str, str]) -> Outcome:
        """Replace ``action.container_id`` by a new container of ``target.spec``."""
        old = action.container_id
        stop_first = action.strategy == "stop-first"
        old_info = await self.engine.inspect(old)
        # The new one starts under a temporary name while the old one holds the real one, and
        # takes the real name back once the old one is removed. (If an interrupted apply left
        # the old one under a temporary name, the new one takes the real name at once.)
        name = target.name if old_info is None or old_info.name != target.name \
            else f"{target.name}{NEXT}{secrets.token_hex(4)}"
        self.report(f"replace {target.name} ({action.strategy}): {action.reason}")
        if stop_first:
            await self.engine.stop(old)
        new = ""
        # The spec hash is the target's, not that of the spec under its temporary name:
        # else the renamed container would not match its unit, and be replaced again.
        labels = {**labels, SPEC_HASH_LABEL: spec_hash(target.spec)}
        try:
            new = await self.engine.create(dataclasses.replace(target.spec, name=name),
                                           extra_labels=labels)
            await self.engine.start(new)
            failure = await self.gate(new, target)
        except ShipmateError as exc:
            failure = exc.message if new else f"could not be created: {exc.message}"
        if failure:
            tail = await self._tail(new) if new else ""
            if new:
                await self.engine.remove(new, force=True)
            if stop_first:
                await self.engine.start(old)
            return Outcome(action, False, f"{target.name}: the new container {failure}; "
                           f"kept the old one{tail}", old)
        if not stop_first:
            await self.engine.stop(old)
        await self.engine.remove(old, force=True)
        if name != target.name:
            await self.engine.rename(new, target.name)
        return Outcome(action, True, f"{target.name} replaced", new)

    async def gate(self, cid: str, target: Target) -> str | None:
        """Wait until ``cid`` is healthy; None, or what went wrong."""
        deadline = self.clock.now() + target.wait
        up_since: float | None = None
        while True:
            info = await self.engine.inspect(cid)
            if info is None:
                return "disappeared"
            if not info.running:
                return f"exited (state {info.state}, exit code {info.exit_code})"
            if target.spec.health is not None:
                if info.health == "healthy":
                    return None
                if info.health == "unhealthy":
                    return "failed its health check"
            else:
                up_since = self.clock.now() if up_since is None else up_since
                if self.clock.now() - up_since >= target.running_for:
                    return None
            if self.clock.now() >= deadline:
                return f"was not healthy within {target.wait:g}s"
            await self.clock.sleep(self.poll)

    async def _tail(self, cid: str) -> str:
        """The last log lines of ``cid``, for the failure report."""
        lines: list[str] = []
        try:
            async for line in self.engine.logs(cid, tail=LOG_TAIL):
                lines.append(line.rstrip())
        except ShipmateError:
            return ""
        return ("\nlast log lines:\n  " + "\n  ".join(lines)) if lines else ""
