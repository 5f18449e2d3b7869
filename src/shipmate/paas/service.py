"""The PaaS's operations, one method per user action. The API calls these; they use the
store records (:mod:`.state`), the builder (:mod:`.build`) and the deployer (:mod:`.deploy`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from shipmate import metrics
from shipmate.clock import Clock, SystemClock
from shipmate.config import Config
from shipmate.engine.base import Engine
from shipmate.errors import ConflictError, ShipmateError, ValidationError
from shipmate.paas import build as builder
from shipmate.paas.attach import AttachmentStore, placement_note
from shipmate.paas.builders.appjson import initial_formation
from shipmate.paas.builders.checks import check_setting
from shipmate.paas.cancel import RunningDeploys
from shipmate.paas.deploy import Deployer, RouterProgress
from shipmate.paas.gitserver import repo_path
from shipmate.paas.model import MAX_SCALE, PROCESS_TYPE, Release
from shipmate.paas.sandbox import BuildSandbox
from shipmate.paas.sshkeys import SshKeys
from shipmate.paas.state import PaasState, app_key
from shipmate.paas.timings import Stopwatch, summary, took
from shipmate.paas.units import APP_LABEL, PROCESS_LABEL, parse_unit_name, unit_prefix
from shipmate.paas.urls import app_urls
from shipmate.router import keys as route_keys
from shipmate.router import tlskeys
from shipmate.scheduler.registry import Registry
from shipmate.store.base import Store

Emit = Callable[[str], None]


class Paas:
    """Apps, config, domains, releases, deploys."""

    def __init__(self, store: Store, engine: Engine | None, config: Config, *,
                 router: RouterProgress | None = None, clock: Clock | None = None) -> None:
        self.store, self.engine, self.config = store, engine, config
        self.state = PaasState(store, default_global_domain=config.global_domain)
        self.keys = SshKeys(store)
        self.registry = Registry(store)
        self.router = router
        self.deployer = Deployer(store, engine, config, self.state, self.registry,
                                 router=router, clock=clock or SystemClock())
        #: Deploys running on this daemon, which ps:stop and apps:destroy cancel.
        self.running = RunningDeploys()

    def require_engine(self) -> Engine:
        """This machine's engine, or an error saying there is none (a daemon may run
        without dockerd: it then serves the store and the router, and refuses builds)."""
        if self.engine is None:
            raise ShipmateError("no Docker engine on this machine",
                                hint="start one: dockerd >/var/log/dockerd.log 2>&1 &")
        return self.engine

    # reports ------------------------------------------------------------------------------

    async def report(self, app: str) -> dict[str, Any]:
        """``apps:report``."""
        a = await self.state.get_app(app)
        current = await self.state.current(app)
        return {"name": a.name, "locked": a.locked, "created": a.created,
                "release": current.label if current else "",
                "deploy_source": "git" if current else "",
                "repo": str(repo_path(self.config.state_dir, app))}

    async def urls(self, app: str) -> list[str]:
        """Where the app answers (``https://`` for the names its certificate covers)."""
        domains, port = await self.state.domains(app)
        glob = await self.state.global_domain()
        kv = await self.store.get(tlskeys.cert_key(app))
        cert = tlskeys.decode_tls([(kv.key, kv.value)]).certs.get(app) if kv else None
        return app_urls(([f"{app}.{glob}"] if glob else []) + domains,
                        port if not glob else None, cert_names=cert.names if cert else (),
                        http_port=self.config.http_port, https_port=self.config.https_port,
                        public_ip=self.config.public_ip)

    async def domains_report(self, app: str) -> dict[str, Any]:
        """``domains:report`` and ``urls``."""
        await self.state.get_app(app)
        domains, port = await self.state.domains(app)
        glob = await self.state.global_domain()
        return {"vhosts": domains, "global": glob, "port": port,
                "urls": await self.urls(app)}

    async def ps(self, app: str) -> dict[str, Any]:
        """``ps:report``: every instance unit, where it runs and its endpoint."""
        await self.state.get_app(app)
        current = await self.state.current(app)
        states = {s.unit: s for s in await self.registry.unit_states()}
        waiting = await self.registry.waiting()
        kvs, _ = await self.store.range(f"{route_keys.ENDPOINTS_PREFIX}{app}/")
        eps = [json.loads(kv.value) for kv in kvs]
        procs = []
        for name in sorted(await self.registry.units()):
            parsed = parse_unit_name(name)
            if not name.startswith(unit_prefix(app)) or parsed is None:
                continue
            st = states.get(name)
            ep = next((e for e in eps if e.get("release") == parsed[3]
                       and e.get("machine") == (st.machine if st else None)), None)
            procs.append({"unit": name, "instance": f"{parsed[1]}.{parsed[2]}",
                          "release": parsed[3], "machine": st.machine if st else "-",
                          "state": f"{st.active_state}/{st.sub_state}" if st else "waiting",
                          "endpoint": f"{ep['host']}:{ep['port']}" if ep else "-",
                          **({"reason": waiting[name]} if not st and name in waiting else {})})
        return {"release": current.label if current else "", "processes": procs}

    # changes that deploy ------------------------------------------------------------------

    async def push(self, app: str, rev: str, tar: bytes, emit: Emit) -> None:
        """A ``git push``: build, then deploy as a new release."""
        a = await self.state.get_app(app)
        if a.locked:
            raise ConflictError(f"Deploy lock exists for {app}", hint=f"apps:unlock {app}")
        watch = Stopwatch()
        emit(f"-----> Building {app} (revision {rev[:7]})")
        network, buildargs = await BuildSandbox(self.require_engine(), self.config).settings()
        with metrics.BUILD_SECONDS.time(app=app):
            result = await builder.build(self.require_engine(), app, rev, tar, emit,
                                         buildargs=buildargs, network=network,
                                         limits=builder.BuildLimits.from_config(self.config))
        emit(f"-----> Build done {took(watch.lap('build'))}")
        config = await self.state.config(app)
        await self._ensure_formation(app, result.processes, result.app_json.formation)
        scripts = {"predeploy": result.app_json.predeploy,
                   "postdeploy": result.app_json.postdeploy}
        release = await self.deployer.deploy(app, lambda v: Release(
            v, result.image, config, {}, result.processes, rev, time.time(),
            f"Deploy {rev[:7]}", result.checks.to_json(),
            cron=tuple(e.to_json() for e in result.app_json.cron)), emit,
            release_command=result.release_command, scripts=scripts, watch=watch)
        await self._deployed(app, release, emit)

    async def _ensure_formation(self, app: str, processes: Mapping[str, str],
                                declared: Mapping[str, int] | None = None) -> None:
        # Only what was recorded counts as set (the formation read defaults to web=1).
        recorded = await self.store.get(app_key(app, "formation"))
        current = await self.state.formation(app) if recorded else {}
        await self.state.set_formation(app, initial_formation(declared or {}, current,
                                                              processes))

    async def _deployed(self, app: str, release: Release, emit: Emit) -> None:
        emit(f"=====> Application deployed: {release.label}"
             + (f" in {summary(release.timings)}" if release.timings else ""))
        if (await self.state.formation(app)).get("web", 0) < 1:
            emit("       (no web process: the app has no route)")
            return
        for url in await self.urls(app):
            emit(f"       {url}")

    async def _redeploy(self, app: str, emit: Emit, *, change: Callable[[Release, int], Release]
                        | None = None) -> None:
        current = await self.state.current(app)
        if current is None:
            emit("-----> App has not been deployed yet; nothing to restart")
            return
        target: Release | Callable[[int], Release] = current
        if change is not None:
            base = current
            target = lambda v: change(base, v)  # noqa: E731 - closes over base
        release = await self.deployer.deploy(app, target, emit)
        await self._deployed(app, release, emit)

    async def change_config(self, app: str, set_: Mapping[str, str], unset: tuple[str, ...],
                            restart: bool, emit: Emit) -> None:
        """``config:set`` / ``config:unset``: a new release with the new config."""
        new = await self.state.update_config(app, set_, unset)
        if not restart:
            return
        what = ("Set " + ", ".join(set_)) if set_ else ("Unset " + ", ".join(unset))
        emit("-----> Restarting app with the new config")
        await self._redeploy(app, emit, change=lambda cur, v: Release(
            v, cur.image, new, {}, cur.processes, cur.git_rev, time.time(), what,
            dict(cur.checks), cron=cur.cron))

    async def rollback(self, app: str, version: int, emit: Emit) -> None:
        """``releases:rollback``: a new release with vN's image and config."""
        old = await self.state.release(app, version)
        release = await self.deployer.deploy(app, lambda v: Release(
            v, old.image, old.config, {}, old.processes, old.git_rev, time.time(),
            f"Rollback to {old.label}", dict(old.checks), cron=old.cron), emit)
        await self.state.update_config(app, old.config,
                                       tuple(set(await self.state.config(app)) - set(old.config)))
        await self._deployed(app, release, emit)

    async def scale(self, app: str, formation: Mapping[str, Any], emit: Emit) -> None:
        """``ps:scale``: set the formation and run it."""
        current = await self.state.formation(app)
        for proc, count in formation.items():
            if not PROCESS_TYPE.fullmatch(str(proc)) or not isinstance(count, int) \
                    or not 0 <= count <= MAX_SCALE:
                raise ValidationError(f"Invalid scale {proc}={count}")
        release = await self.state.current(app)
        if release is not None:
            unknown = sorted(set(formation) - set(release.processes))
            if unknown:
                raise ValidationError(f"Process type {unknown[0]!r} is not in the Procfile",
                                      hint="known: " + ", ".join(sorted(release.processes)))
        await self.state.set_formation(app, {**current, **formation})
        note = placement_note(app, await AttachmentStore(self.store).read(app))
        if note:
            emit(note)
        await self._redeploy(app, emit)

    async def restart(self, app: str, emit: Emit) -> None:
        """``ps:restart``: start fresh instances of the current release, then stop the old."""
        await self._redeploy(app, emit)

    async def stop(self, app: str, emit: Emit) -> None:
        """``ps:stop``: cancel a running deploy, then stop every instance (their units stay,
        inactive, until ``ps:start``, ``ps:restart`` or the next deploy)."""
        await self._cancel(app, "ps:stop", emit)
        async with self.deployer.lock(app):
            names = await self._app_units(app)
            for name in names:
                with contextlib.suppress(ShipmateError):
                    await self.registry.set_desired(name, "loaded")
            emit(f"-----> Stopped {len(names)} instance(s) of {app}")

    async def start(self, app: str, emit: Emit) -> None:
        """``ps:start``: start the instances ``ps:stop`` stopped."""
        async with self.deployer.lock(app):
            names = await self._app_units(app)
            for name in names:
                with contextlib.suppress(ShipmateError):
                    await self.registry.set_desired(name, "launched")
            emit(f"-----> Started {len(names)} instance(s) of {app}")

    async def _app_units(self, app: str) -> list[str]:
        await self.state.get_app(app)
        return sorted(n for n in await self.registry.units() if n.startswith(unit_prefix(app)))

    async def _cancel(self, app: str, reason: str, emit: Emit) -> None:
        if await self.running.cancel(app, reason):
            emit(f"-----> Cancelled the running deploy of {app}")

    async def destroy(self, app: str, emit: Emit) -> None:
        """``apps:destroy``: cancel a running deploy, then units, records, repository."""
        await self._cancel(app, "apps:destroy", emit)
        async with self.deployer.lock(app):
            removed = await self.deployer.destroy_all(app)
            emit(f"-----> Removed {len(removed)} instance(s)")
            for link in sorted((await AttachmentStore(self.store).read(app)).links):
                emit(f"-----> Keeping linked service {link} and its data (it is no longer "
                     "linked; its destroy command removes it)")
            await self.state.destroy_app(app)
            await asyncio.to_thread(shutil.rmtree, repo_path(self.config.state_dir, app), True)

    async def change_checks(self, app: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``checks:enable/disable/set``."""
        checks = await self.state.checks(app)
        disabled = set(checks.get("disabled", []))
        disabled |= set(body.get("disable", []))
        disabled -= set(body.get("enable", []))
        if "_all_" in body.get("enable", []):
            disabled = set()
        checks["disabled"] = sorted(disabled)
        for key, value in (body.get("set") or {}).items():
            if value is None:
                checks.pop(key, None)
            else:
                checks[key] = check_setting(str(key), value)
        await self.state.set_checks(app, checks)
        return checks

    # logs and one-off runs ---------------------------------------------------------------------

    async def logs(self, app: str, num: int, follow: bool, process: str) -> AsyncIterator[str]:
        """Lines of the app's containers on this machine, ``app[web.1]: line``."""
        engine = self.require_engine()
        containers = [c for c in await engine.list({APP_LABEL: app})
                      if not process or c.labels.get(PROCESS_LABEL) == process]
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def pump(cid: str, label: str) -> None:
            with contextlib.suppress(ShipmateError):
                async for line in engine.logs(cid, follow=follow, tail=num):
                    await queue.put(f"{app}[{label}]: {line}")
            await queue.put(None)

        tasks = [asyncio.create_task(pump(c.id, c.labels.get("shipmate.instance", "?")))
                 for c in containers]
        try:
            open_ = len(tasks)
            while open_:
                item = await queue.get()
                if item is None:
                    open_ -= 1
                else:
                    yield item
        finally:
            for t in tasks:
                t.cancel()

    async def run(self, app: str, argv: list[str]) -> AsyncIterator[str]:
        """``run APP CMD``: a one-off container of the current release; the last line is
        ``\\0exit N``."""
        current = await self.state.current(app)
        if current is None:
            raise ValidationError(f"{app} has not been deployed", hint="push it first")
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def work() -> None:
            try:
                code, _ = await self.deployer.one_off(app, current, argv, queue.put_nowait)
                queue.put_nowait(f"\0exit {code}")
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(work())
        while (item := await queue.get()) is not None:
            yield item
        await task
