"""Deploys: start the new instances as units, wait until they are healthy, switch the router,
drain, stop the old ones. A deploy that fails anywhere before the switch removes what it
started and leaves the running release serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.config import Config
from shipmate.engine.base import Engine
from shipmate.errors import ConflictError, ShipmateError
from shipmate.paas.attach import AttachmentStore, unit_extras
from shipmate.paas.builders.checks import Check, CheckPlan
from shipmate.paas.model import Release
from shipmate.paas.ports import container_port
from shipmate.paas.resources import ResourceSettings
from shipmate.paas.state import PaasState, app_key
from shipmate.paas.timings import Stopwatch, took
from shipmate.paas.units import InstanceUnit, instance_units, parse_unit_name, unit_prefix
from shipmate.router import keys as route_keys
from shipmate.router.progress import routers_behind, wait_routers
from shipmate.scheduler.registry import Registry
from shipmate.spec.container import Mount, make_spec
from shipmate.spec.unitcontainer import default_container_name
from shipmate.store.base import Store

Emit = Callable[[str], None]
START_TIMEOUT = 90.0
# Old instances keep running this long after the router took the switch, so that requests
# already on their way to them (and routers of other machines, which follow the store a
# little later) finish; then they are stopped.
DRAIN_SECONDS = 2.0
# How long a stopping daemon waits for the retirements under way (then retires at once).
SETTLE_SECONDS = DRAIN_SECONDS + 3.0
# How long a deploy waits for every live router to make the switch live (and, if one has not,
# how much longer the old instances are kept before they are retired anyway).
ROUTE_TIMEOUT = 30.0
# How often a check asks again while the new process does not answer yet, and how often the
# deploy looks whether the new instances run: a warm deploy is about a second, every poll
# interval shows in it.
NOT_UP_POLL = 0.1
START_POLL = 0.1


class RouterProgress(Protocol):
    """What the deployer reads of this machine's router: the store revision it last made
    live (:class:`~shipmate.router.controller.RouterController`)."""

    revision: int

    @property
    def excluded(self) -> dict[str, str]:
        """Apps the router leaves out (nginx refused their routes), with the reason."""
        ...


class DeployError(ShipmateError):
    """A deploy failed before the switch; the old release still serves."""

    status = 422
    code = "deploy_failed"


class Deployer:
    """Runs deploys of PaaS apps through the scheduler's units. Every wait and deadline is on
    ``clock`` (a FakeClock in unit tests)."""

    def __init__(self, store: Store, engine: Engine | None, config: Config,
                 state: PaasState, registry: Registry, *,
                 router: RouterProgress | None = None, clock: Clock | None = None) -> None:
        self.store, self.engine, self.config = store, engine, config
        self.state, self.registry = state, registry
        self.clock: Clock = clock or SystemClock()
        #: This machine's router, when it runs one (deploys wait for it to take a switch).
        self.router = router
        self._retiring: dict[asyncio.Task[None], list[str]] = {}  # task -> units it retires

    # the deploy ---------------------------------------------------------------------------

    async def deploy(self, app: str, release: Release | Callable[[int], Release], emit: Emit,
                     *, release_command: str = "",
                     scripts: Mapping[str, str] | None = None,
                     watch: Stopwatch | None = None) -> Release:
        """Run a release of ``app`` with its current formation, health-gated. Given a
        function, it makes the next release (numbered under the deploy lock) and records it
        once it takes traffic; given a release, that one is run again (restart, scale).
        ``scripts`` are app.json's ``predeploy`` (before the release command; failing, it
        rejects the deploy) and ``postdeploy`` (once the release takes traffic). ``watch``
        times the steps (a push's started before its build); the release returned carries
        the times."""
        watch = watch or Stopwatch()
        async with self.lock(app), metrics.DEPLOY_SECONDS.time(app=app):
            record = callable(release)
            if callable(release):
                existing = await self.state.releases(app)
                release = release(existing[-1].version + 1 if existing else 1)
            phases = {**(scripts or {}), "release": release_command}
            for phase in ("predeploy", "release"):
                if phases.get(phase):
                    await self._phase(app, release, phase, phases[phase], emit)
                    watch.lap(phase)
            formation = await self.state.formation(app)
            formation = {p: n for p, n in formation.items() if p in release.processes}
            tag = f"v{release.version}-{secrets.token_hex(2)}"
            limits = await ResourceSettings(self.store).for_processes(app, list(formation))
            units = instance_units(app, tag, release.image, release.processes, formation,
                                   release.config, release.git_rev,
                                   image_source=self.config.machine_id, resources=limits,
                                   port=await container_port(self.store, app),
                                   extras=unit_extras(await AttachmentStore(self.store).read(app)))
            try:
                await self._start(units, emit)
                await self._wait_running(app, tag, units)
                emit(f"-----> {len(units)} instance(s) running {took(watch.lap('start'))}")
                with metrics.HEALTH_CHECK_SECONDS.time(app=app):
                    await self._check(app, tag, units, release, emit, watch)
            except BaseException:
                emit(" !     Deploy failed: removing the new instances; the running "
                     "release keeps serving")
                await self._destroy([u.name for u in units])
                raise
            release = dataclasses.replace(release, timings=watch.breakdown())
            if record:
                await self.state.put_release(app, release)
            await self._switch(app, release, tag, emit, watch,
                               routed=any(u.process == "web" for u in units))
            release = dataclasses.replace(release, timings=watch.breakdown())
            if record:  # the switch's time is known only now
                await self.state.set_timings(app, release.version, release.timings)
            if phases.get("postdeploy"):
                await self._postdeploy(app, release, phases["postdeploy"], emit)
            return release

    def lock(self, app: str) -> contextlib.AbstractAsyncContextManager[None]:
        """One deploy per app at a time; a lock left by a dead daemon expires with its lease."""
        return _DeployLock(self.store, app_key(app, "deploy-lock"), app, self.clock)

    async def _start(self, units: list[InstanceUnit], emit: Emit) -> None:
        for unit in units:
            emit(f"-----> Starting {unit.process}.{unit.index} ({unit.name})")
            await self.registry.submit(unit.name, unit.text)
            await self.registry.set_desired(unit.name, "launched")

    async def _wait_running(self, app: str, tag: str, units: list[InstanceUnit]) -> None:
        deadline = self.clock.now() + START_TIMEOUT
        names = {u.name for u in units}
        want_web = sum(1 for u in units if u.process == "web")
        while True:
            states = {s.unit: s for s in await self.registry.unit_states() if s.unit in names}
            failed = [n for n, s in states.items() if s.active_state == "failed"]
            if failed:
                raise DeployError(f"{failed[0]} failed to start{await self._logs(failed[0])}")
            active = [n for n, s in states.items() if s.active_state == "active"]
            web = await self._endpoints(app, tag)
            if len(active) == len(names) and len(web) >= want_web:
                return
            if self.clock.now() > deadline:
                waiting = sorted(names - set(active))
                unplaced = await self.registry.waiting()  # the scheduler's reasons
                shown = [f"{n} ({unplaced[n]})" if n in unplaced else n for n in waiting]
                raise DeployError(
                    f"instances did not start within {START_TIMEOUT:.0f}s: "
                    f"{', '.join(shown) or 'web endpoints missing'}"
                    + (await self._logs(waiting[0]) if waiting else ""),
                    hint="check `shipmate fleet list-units` and the app's logs")
            await self.clock.sleep(START_POLL)

    async def _endpoints(self, app: str, tag: str) -> list[dict[str, Any]]:
        kvs, _ = await self.store.range(f"{route_keys.ENDPOINTS_PREFIX}{app}/web/")
        found = [json.loads(kv.value) for kv in kvs]
        return [e for e in found if e.get("release") == tag]

    async def _check(self, app: str, tag: str, units: list[InstanceUnit],
                     release: Release, emit: Emit, watch: Stopwatch) -> None:
        running_since = self.clock.now()  # the instances were just seen running
        plan = CheckPlan.from_json(release.checks)
        settings = await self.state.checks(app)
        disabled = set(settings.get("disabled", []))
        if "_all_" in disabled:
            emit("-----> Zero downtime checks disabled, skipping")
            watch.lap("checks")
            return
        # Explicit checks prove the app works; without them, it must at least stay up a while.
        explicit = bool(plan.checks.get("web")) and "web" not in disabled
        wait = plan.stay_up(settings, float(self.config.checks_wait), explicit=explicit)
        if "web" not in disabled:
            for ep in await self._endpoints(app, tag):
                await self._check_endpoint(ep, plan.checks.get("web", ()), settings, emit)
        if wait > 0:
            # Staying up counts from when they ran, so the checks' own time is part of it.
            emit(f"-----> Waiting {wait:g}s (since they started) to make sure the processes "
                 "stay up")
            await self.clock.sleep(wait - (self.clock.now() - running_since))
        names = {u.name for u in units}
        states = {s.unit: s for s in await self.registry.unit_states() if s.unit in names}
        down = sorted(n for n in names if states.get(n) is None
                      or states[n].active_state != "active")
        web_eps = await self._endpoints(app, tag)
        if down or len(web_eps) < sum(1 for u in units if u.process == "web"):
            raise DeployError(f"{', '.join(down) or 'a web instance'} did not stay up"
                              + (await self._logs(down[0]) if down else ""))
        emit(f"-----> Health checks passed {took(watch.lap('checks'))}")

    async def _check_endpoint(self, ep: Mapping[str, Any], checks: tuple[Check, ...],
                              settings: Mapping[str, Any], emit: Emit) -> None:
        base = f"http://{ep['host']}:{ep['port']}"
        todo = checks or (Check(path="/", attempts=int(settings.get("attempts") or 20),
                                timeout=float(settings.get("timeout") or 5)),)
        for check in todo:
            if check.initial_delay:
                await self.clock.sleep(check.initial_delay)
            emit(f"-----> Checking {check.path} on {ep['host']}:{ep['port']}"
                 + (f" for {check.content!r}" if check.content else ""))
            await _http_check(base, check, self.clock, default_only=not checks)


    async def _phase(self, app: str, release: Release, phase: str, command: str,
                     emit: Emit) -> None:
        """Procfile ``release:`` or app.json ``predeploy``: a one-off container of the new
        release that must succeed before any instance of it starts."""
        code = await self._run_phase(app, release, phase, command, emit)
        if code != 0:
            where = ("the Procfile's `release:` command" if phase == "release"
                     else f"app.json scripts.dokku.{phase}")
            raise DeployError(f"{phase} command failed with exit code {code}",
                              hint=f"fix {where}; nothing was changed")

    async def _postdeploy(self, app: str, release: Release, command: str, emit: Emit) -> None:
        # The release already takes traffic: a failure is reported, never rolled back.
        code = await self._run_phase(app, release, "postdeploy", command, emit)
        if code != 0:
            emit(f" !     postdeploy command failed with exit code {code}; "
                 f"{release.label} is live")

    async def _run_phase(self, app: str, release: Release, phase: str, command: str,
                         emit: Emit) -> int:
        label = "release command" if phase == "release" else f"{phase} command"
        emit(f"-----> Running {label}: {command}")
        code, out = await self.one_off(app, release, ["/bin/sh", "-c", command])
        for line in out.splitlines()[-40:]:
            emit(f"       {line}")
        return code

    async def one_off(self, app: str, release: Release, argv: list[str],
                      on_line: Emit | None = None, *, env: Mapping[str, str] | None = None,
                      labels: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run ``argv`` in a new container of ``release`` on this machine; remove it after.
        ``env`` and ``labels`` are added to the container's (a cron run names itself)."""
        if self.engine is None:
            raise ShipmateError("no Docker engine on this machine")
        full_env = {**release.config, "PORT": "5000", "DYNO": "run.1",
                    "GIT_REV": release.git_rev, **(env or {})}
        att = await AttachmentStore(self.store).read(app)  # runs see the app's storage too
        spec = make_spec(f"{app}-run-{secrets.token_hex(3)}", release.image, command=argv,
                         env=full_env, labels={**(labels or {}), "shipmate.one-off": app},
                         init=True,
                         mounts=[Mount(m.container, m.host) for m in att.mounts],
                         network=unit_extras(att).networks[0] if att.links else None,
                         networks=unit_extras(att).networks[1:])
        cid = await self.engine.create(spec)
        lines: list[str] = []
        try:
            await self.engine.start(cid)
            async for line in self.engine.logs(cid, follow=True):
                lines.append(line)
                if on_line:
                    on_line(line)
            code = await self.engine.wait(cid)
        finally:
            await self.engine.remove(cid, force=True)
        return code, "\n".join(lines)

    async def _switch(self, app: str, release: Release, tag: str, emit: Emit,
                      watch: Stopwatch | None = None, *, routed: bool = True) -> None:
        watch = watch or Stopwatch()
        await self.state.set_current(app, release.version)
        switched = await self.store.put(route_keys.active_key(app), route_keys.encode_active(tag))
        if routed:  # an app without a web process gets no route (Dokku's web=0)
            await self.state.ensure_routed(app)
        # The revision the router must have read: that of the switch and of the app's route
        # (not the store's latest, which unrelated writes move on without a router pass).
        route = await self.store.get(route_keys.domains_key(app))
        switched = max(switched, route.mod_revision if route else 0)
        old = [n for n in (await self.registry.units())
               if n.startswith(unit_prefix(app)) and (parse_unit_name(n) or ("",) * 4)[3] != tag]
        # The old instances may only go once no router sends them traffic: a slow router
        # pass (a loaded machine, a missed watch event) must not turn into 502s.
        live = await self._wait_routed(switched, ROUTE_TIMEOUT)
        if not live:
            late = ", ".join(await self._routers_behind(switched))
            emit(f" !     The router of {late} has not taken the switch after {ROUTE_TIMEOUT:g}s; "
                 f"old instances are kept up to {ROUTE_TIMEOUT:g}s longer, then retired")
        emit(f"-----> Switched traffic to {release.label} {took(watch.lap('switch'))}; retiring "
             f"{len(old)} old instance(s) in {DRAIN_SECONDS:g}s")
        # Like Dokku's DOKKU_WAIT_TO_RETIRE, old instances finish their requests in the
        # background; the deploy is done once traffic has switched.
        self._start_retiring(old, switched, live)

    def _start_retiring(self, names: list[str], revision: int, live: bool) -> None:
        task = asyncio.create_task(self._retire(names, revision, live))
        self._retiring[task] = names
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    async def settle(self, timeout: float = SETTLE_SECONDS) -> list[str]:
        """Let the retirements under way finish, for up to ``timeout`` seconds, then retire
        what is left at once. The daemon does this before it stops (a handover at ``cluster
        init`` too): nothing else would retire a previous release's instances later. Returns
        the units retired early."""
        pending = dict(self._retiring)
        if not pending:
            return []
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        names = [name for task in late for name in pending[task]]
        await self._destroy(names)
        return names

    async def _wait_routed(self, revision: int, timeout: float) -> bool:
        """Wait until every live router (each machine's that records its progress, and this
        machine's) made store ``revision`` live (True), or ``timeout`` passed (False)."""
        late = await wait_routers(self.store, revision, timeout=timeout, clock=self.clock,
                                  local=self.router, poll=0.05)
        return not late

    async def _routers_behind(self, revision: int) -> list[str]:
        late = await routers_behind(self.store, revision)
        here = str(self.config.machine_id)
        if self.router is not None and self.router.revision < revision and here not in late:
            late.append(here)
        return late

    async def _retire(self, names: list[str], revision: int, live: bool) -> None:
        if not live:  # give a struggling router one more chance, bounded, before they go
            await self._wait_routed(revision, ROUTE_TIMEOUT)
        await self.clock.sleep(DRAIN_SECONDS)
        await self._destroy(names)

    async def _destroy(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(ShipmateError):
                await self.registry.destroy(name)

    async def destroy_all(self, app: str) -> list[str]:
        """Remove every unit of ``app`` (apps:destroy)."""
        names = [n for n in await self.registry.units() if n.startswith(unit_prefix(app))]
        await self._destroy(names)
        return names

    async def _logs(self, unit: str) -> str:
        if self.engine is None:
            return ""
        lines: list[str] = []
        with contextlib.suppress(ShipmateError):
            async for line in self.engine.logs(default_container_name(unit), tail=20):
                lines.append(line)
        return ("\nlast output:\n" + "\n".join(lines)) if lines else ""


async def _http_check(base: str, check: Check, clock: Clock, *, default_only: bool) -> None:
    """GET ``check.path`` until it answers as expected or the attempts run out. The default
    check only needs the port to answer HTTP with a status below 500.

    A port that does not answer HTTP yet (the app is still starting: refused, or reset by the
    engine's port proxy) is asked again every :data:`NOT_UP_POLL` seconds without using up an
    attempt, for as long as the attempts would last; an answer that fails (a 5xx, the wrong
    content, a timeout) uses one and waits the check's pause (``wait``, at least 1 s)."""
    pause = max(check.wait, 1.0)
    starting_until = clock.now() + max(1, check.attempts) * pause
    last, failed = "no answer", 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=check.timeout)) as s:
        while True:
            try:
                async with s.get(base + check.path, allow_redirects=False) as resp:
                    body = await resp.text(errors="replace")
                ok = resp.status < 500 if default_only else 200 <= resp.status < 400
                if ok and (not check.content or check.content in body):
                    return
                last = (f"HTTP {resp.status}" if not ok
                        else f"expected content {check.content!r} not found")
            except TimeoutError as exc:
                last = type(exc).__name__
            except aiohttp.ClientError as exc:
                last = type(exc).__name__
                if clock.now() < starting_until:
                    await clock.sleep(NOT_UP_POLL)
                    continue
            failed += 1
            if failed >= max(1, check.attempts):
                break
            await clock.sleep(pause)
    raise DeployError(f"health check {check.path} failed after {check.attempts} attempts: {last}",
                      hint="the release was not switched to; fix the app and push again")


class _DeployLock(contextlib.AbstractAsyncContextManager[None]):
    def __init__(self, store: Store, key: str, app: str, clock: Clock) -> None:
        self.store, self.key, self.app, self.clock = store, key, app, clock
        self.lease = 0
        self._keep: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self.lease = await self.store.grant(15)
        if not await self.store.create(self.key, str(time.time()), lease=self.lease):
            await self.store.revoke(self.lease)
            raise ConflictError(f"{self.app} is currently being deployed",
                                hint="wait for that deploy to finish, then try again")
        self._keep = asyncio.create_task(self._keepalive())

    async def _keepalive(self) -> None:
        while True:
            await self.clock.sleep(5)
            with contextlib.suppress(ShipmateError):
                await self.store.keepalive(self.lease)

    async def __aexit__(self, *exc: object) -> None:
        if self._keep:
            self._keep.cancel()
        await self.store.revoke(self.lease)
