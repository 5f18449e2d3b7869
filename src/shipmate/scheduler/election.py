"""Leader election over the store: a key created under a lease, kept alive (I/O).

Whoever creates ``/shipmate/fleet/leader`` (only if missing) is leader while its lease lives.
The key's mod revision at creation is the *fencing token*: every write the leader makes
compares it (:meth:`Leadership.fence`), so a deposed leader whose lease expired (and whose
key another machine has since created) cannot write, however late its request arrives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from shipmate.clock import Clock, SystemClock
from shipmate.errors import LeaseNotFoundError, StoreError
from shipmate.scheduler.model import Leader, dumps
from shipmate.scheduler.registry import LEADER_KEY
from shipmate.scheduler.tasks import first
from shipmate.store.base import Compare, Op, Store

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Leadership:
    """A won election: the lease holding the key and the key's mod revision."""

    machine_id: str
    lease: int
    revision: int

    def fence(self) -> Compare:
        """The compare that makes a transaction succeed only while this leadership holds."""
        return Compare.mod_is(LEADER_KEY, self.revision)


class Election:
    """Campaign for, hold and give up the scheduler leadership."""

    def __init__(self, store: Store, machine_id: str, *, ttl: float = 3.0,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.machine_id = machine_id
        self.ttl = ttl
        self.clock: Clock = clock or SystemClock()

    async def try_acquire(self) -> Leadership | None:
        """One attempt: create the leader key under a new lease; None if someone holds it."""
        lease = await self.store.grant(self.ttl)
        value = dumps(Leader(self.machine_id).to_json())
        res = await self.store.txn([Compare.missing(LEADER_KEY)],
                                   [Op.put(LEADER_KEY, value, lease)])
        if not res.succeeded:
            await self.store.revoke(lease)
            return None
        kv = await self.store.get(LEADER_KEY)
        if kv is None or kv.lease != lease:  # expired already (a very slow store)
            await self.store.revoke(lease)
            return None
        log.info("machine %s is the scheduler leader (revision %d)", self.machine_id,
                 kv.mod_revision)
        return Leadership(self.machine_id, lease, kv.mod_revision)

    async def acquire(self) -> Leadership:
        """Campaign until elected: retry when the key is deleted or every ttl/2 (watches can
        miss events, so the timer is the safety net)."""
        while True:
            try:
                won = await self.try_acquire()
                if won is not None:
                    return won
                await self._wait_vacancy()
            except StoreError as exc:
                log.warning("leader election: %s", exc)
                await self.clock.sleep(self.ttl / 2)

    async def _wait_vacancy(self) -> None:
        watch = await self.store.watch(LEADER_KEY)
        try:
            if await self.store.get(LEADER_KEY) is None:
                return

            async def deleted() -> None:
                async for event in watch:
                    if event.type == "delete" and event.kv.key == LEADER_KEY:
                        return

            await first(deleted(), self.clock.sleep(self.ttl / 2))
        finally:
            await watch.close()

    async def hold(self, leadership: Leadership) -> None:
        """Keep the lease alive; return when leadership is lost (lease gone, or no successful
        keepalive for a whole TTL, after which the lease must be presumed expired)."""
        last_ok = self.clock.now()
        while True:
            await self.clock.sleep(self.ttl / 3)
            try:
                await self.store.keepalive(leadership.lease)
                last_ok = self.clock.now()
            except LeaseNotFoundError:
                log.warning("scheduler leadership of %s lost: lease expired", self.machine_id)
                return
            except StoreError as exc:
                if self.clock.now() - last_ok >= self.ttl:
                    log.warning("scheduler leadership of %s lost: %s", self.machine_id, exc)
                    return

    async def resign(self, leadership: Leadership) -> None:
        """Give up now (revoking the lease deletes the key, waking the other candidates)."""
        with contextlib.suppress(StoreError):
            await self.store.revoke(leadership.lease)
