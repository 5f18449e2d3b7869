"""The PaaS's records in the store: apps, config, formation, releases, checks and SSH keys.

Keys (JSON values):

- ``/shipmate/apps/<app>/meta``             {"name", "created", "locked"}
- ``/shipmate/apps/<app>/config``           {"KEY": "value", ...}
- ``/shipmate/apps/<app>/formation``        {"web": 1, ...}
- ``/shipmate/apps/<app>/checks``           {"disabled": ["web"], "wait": 5, ...}
- ``/shipmate/apps/<app>/releases/<N:06d>`` a :class:`Release`
- ``/shipmate/apps/<app>/current``          {"version": N}
- ``/shipmate/ssh-keys/<name>``             {"name", "key", "fingerprint", "added", "admin"}
- ``/shipmate/acl/<app>``                   {"names": [...]}: who may act on it (:mod:`.acl`)

Domains and routing live under the router's keys (:mod:`shipmate.router.keys`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.paas import domains as claims_rules
from shipmate.paas.model import App, Release
from shipmate.router import keys as route_keys
from shipmate.spec.names import validate_app_name, validate_domain
from shipmate.store.base import Compare, Op, Store

APPS = "/shipmate/apps/"
SSH_KEYS = "/shipmate/ssh-keys/"
_CAS_TRIES = 20


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    claims: claims_rules.Claims
    guards: list[Compare]
    ports: dict[str, int | None]


def _busy() -> ConflictError:
    return ConflictError("domains kept changing while this change was checked",
                         hint="try again")


def _valid_or_empty(domain: str) -> str:
    try:
        return validate_domain(domain) if domain else ""
    except ValidationError:
        return ""


def app_key(app: str, part: str) -> str:
    """Key of one of an app's records (the name is validated first)."""
    return f"{APPS}{validate_app_name(app)}/{part}"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class PaasState:
    """Typed access to the PaaS records."""

    def __init__(self, store: Store, *, default_global_domain: str = "") -> None:
        self.store = store
        #: The ``global_domain`` setting: the global domain while the store sets none, as
        #: the router does (:func:`shipmate.router.routes.routes`); '' when it is invalid,
        #: which the router reports.
        self.default_global_domain = _valid_or_empty(default_global_domain)

    async def _json(self, key: str, default: Any) -> Any:
        kv = await self.store.get(key)
        return json.loads(kv.value) if kv else default

    # apps ---------------------------------------------------------------------------------

    async def create_app(self, name: str) -> App:
        """Create an app; refuses an existing name, and a name whose ``APP.GLOBALDOMAIN``
        another app already answers for (:mod:`.domains`)."""
        app = App(validate_app_name(name), time.time())
        meta = _dump({"name": app.name, "created": app.created, "locked": False})
        for _ in range(_CAS_TRIES):
            if await self.exists(name):
                raise ConflictError(f"Name is already taken: {name}")
            snap = await self._claims()
            claims_rules.check_new_app(app.name, snap.claims)
            res = await self.store.txn(
                [Compare.missing(app_key(name, "meta")), *snap.guards],
                # No formation record yet: the first deploy sets it (app.json's formation,
                # else web=1), unless ps:scale came first.
                [Op.put(app_key(name, "meta"), meta),
                 Op.put(app_key(name, "config"), "{}")])
            if res.succeeded:
                return app
        raise _busy()

    async def get_app(self, name: str) -> App:
        """The app, or NotFoundError in Dokku's words."""
        data = await self._json(app_key(name, "meta"), None)
        if data is None:
            raise NotFoundError(f'App {name} does not exist',
                                hint="create it with apps:create, or push to it")
        return App(**data)

    async def exists(self, name: str) -> bool:
        """True if the app exists."""
        return await self.store.get(app_key(name, "meta")) is not None

    async def list_apps(self) -> list[App]:
        """Every app, by name."""
        kvs, _ = await self.store.range(APPS)
        return [App(**json.loads(kv.value)) for kv in kvs if kv.key.endswith("/meta")]

    async def set_locked(self, name: str, locked: bool) -> None:
        """Lock or unlock deploys of an app."""
        app = await self.get_app(name)
        await self.store.put(app_key(name, "meta"), _dump(
            {"name": app.name, "created": app.created, "locked": locked}))

    async def destroy_app(self, name: str) -> None:
        """Forget every record of the app (its units are removed by the caller first)."""
        await self.get_app(name)
        await self.store.txn([], [
            Op.delete(f"{APPS}{name}/", prefix=True),
            Op.delete(route_keys.domains_key(name)), Op.delete(route_keys.active_key(name)),
            # its certificate, HTTPS options and letsencrypt record (router/tlskeys.py),
            # and who was granted it (paas/acl.py: a new app of that name starts with none)
            *(Op.delete(f"/shipmate/{part}/{name}")
              for part in ("tls/certs", "tls/options", "acme/apps", "acl"))])

    # config, formation, checks --------------------------------------------------------------

    async def config(self, name: str) -> dict[str, str]:
        """The app's config vars."""
        await self.get_app(name)
        result: dict[str, str] = await self._json(app_key(name, "config"), {})
        return result

    async def update_config(self, name: str, set_: Mapping[str, str],
                            unset: tuple[str, ...] = ()) -> dict[str, str]:
        """Set and unset config vars atomically (CAS on the config key); returns the result."""
        while True:
            kv = await self.store.get(app_key(name, "config"))
            if kv is None:
                await self.get_app(name)
            current = json.loads(kv.value) if kv else {}
            new = {**current, **set_}
            for key in unset:
                new.pop(key, None)
            rev = kv.mod_revision if kv else 0
            res = await self.store.txn([Compare.mod_is(app_key(name, "config"), rev)],
                                       [Op.put(app_key(name, "config"), _dump(new))])
            if res.succeeded:
                return new

    async def formation(self, name: str) -> dict[str, int]:
        """Process type -> instance count."""
        await self.get_app(name)
        result: dict[str, int] = await self._json(app_key(name, "formation"), {"web": 1})
        return result

    async def set_formation(self, name: str, formation: Mapping[str, int]) -> None:
        """Replace the formation."""
        await self.store.put(app_key(name, "formation"), _dump(dict(formation)))

    async def checks(self, name: str) -> dict[str, Any]:
        """Health-check settings: disabled process types, wait/timeout/attempts overrides."""
        result: dict[str, Any] = await self._json(app_key(name, "checks"), {"disabled": []})
        return result

    async def set_checks(self, name: str, checks: Mapping[str, Any]) -> None:
        """Replace the health-check settings."""
        await self.get_app(name)
        await self.store.put(app_key(name, "checks"), _dump(dict(checks)))

    # releases ---------------------------------------------------------------------------------

    async def releases(self, name: str) -> list[Release]:
        """Every release, oldest first."""
        await self.get_app(name)
        kvs, _ = await self.store.range(app_key(name, "releases/"))
        return [Release.from_json(kv.value) for kv in kvs]

    async def release(self, name: str, version: int) -> Release:
        """One release, or NotFoundError."""
        kv = await self.store.get(app_key(name, f"releases/{version:06d}"))
        if kv is None:
            raise NotFoundError(f"Release v{version} of {name} does not exist",
                                hint=f"see `shipmate releases {name}`")
        return Release.from_json(kv.value)

    async def put_release(self, name: str, release: Release) -> None:
        """Record a release; its number must be new."""
        key = app_key(name, f"releases/{release.version:06d}")
        res = await self.store.txn([Compare.missing(key)], [Op.put(key, release.to_json())])
        if not res.succeeded:
            raise ConflictError(f"release v{release.version} of {name} exists already")

    async def set_timings(self, name: str, version: int, timings: Mapping[str, float]) -> None:
        """Keep how long the deploy of a recorded release took (known only after its switch,
        when the record exists already); the rest of the record is unchanged."""
        key = app_key(name, f"releases/{version:06d}")
        kv = await self.store.get(key)
        if kv is None:
            return
        done = dataclasses.replace(Release.from_json(kv.value), timings=dict(timings))
        await self.store.txn([Compare.mod_is(key, kv.mod_revision)], [Op.put(key, done.to_json())])

    async def current(self, name: str) -> Release | None:
        """The release that takes traffic, if any."""
        data = await self._json(app_key(name, "current"), None)
        return await self.release(name, data["version"]) if data else None

    async def set_current(self, name: str, version: int) -> None:
        """Mark ``version`` as the release taking traffic."""
        await self.store.put(app_key(name, "current"), _dump({"version": version}))

    # domains ------------------------------------------------------------------------------------

    async def global_domain(self) -> str:
        """The global domain apps get as APP.DOMAIN: ``domains:set-global``'s, else the
        ``global_domain`` setting ('' when neither is set)."""
        data = await self._json(route_keys.GLOBAL_DOMAIN_KEY, {})
        return str(data.get("domain", "")) or self.default_global_domain

    async def set_global_domain(self, domain: str) -> str:
        """Set the global domain (``domains:set-global``); refused when it would give an app
        a name another app has. Returns the domain in normal form."""
        for _ in range(_CAS_TRIES):
            snap = await self._claims()
            name = claims_rules.check_new_global(domain, snap.claims)
            res = await self.store.txn(snap.guards, [Op.put(
                route_keys.GLOBAL_DOMAIN_KEY, route_keys.encode_global_domain(name))])
            if res.succeeded:
                return name
        raise _busy()

    async def clear_global_domain(self) -> dict[str, int]:
        """Remove the global domain (``domains:clear-global``). Every routed app without a
        port of its own is given one, as a deploy without a global domain does, so that it
        can still be reached; returns those ports by app. With the ``global_domain``
        setting, that domain applies again and no port is needed."""
        await self.store.delete(route_keys.GLOBAL_DOMAIN_KEY)
        given: dict[str, int] = {}
        if self.default_global_domain:
            return given
        kvs, _ = await self.store.range(route_keys.DOMAINS_PREFIX)
        for kv in kvs:
            app = kv.key.removeprefix(route_keys.DOMAINS_PREFIX)
            if json.loads(kv.value).get("port") is None:
                with contextlib.suppress(NotFoundError):  # a record left by a removed app
                    given[app] = await self.allocate_port(app)
        return given

    async def domains(self, name: str) -> tuple[list[str], int | None]:
        """An app's custom domains and its dedicated port (if any)."""
        data = await self._json(route_keys.domains_key(name), {})
        return list(data.get("domains", [])), data.get("port")

    async def change_domains(self, name: str, add: list[str], remove: list[str]) -> list[str]:
        """``domains:add`` / ``domains:remove``: checked against every other app's names
        (:mod:`.domains`) and written only if none changed meanwhile. Returns the app's
        domains."""
        await self.get_app(name)
        for _ in range(_CAS_TRIES):
            snap = await self._claims()
            added = [claims_rules.check_new_domain(name, d, snap.claims) for d in add]
            domains = claims_rules.merged(snap.claims.custom.get(name, ()), added,
                                          claims_rules.check_removals(remove))
            res = await self.store.txn(snap.guards, [Op.put(
                route_keys.domains_key(name),
                route_keys.encode_domains(domains, snap.ports.get(name)))])
            if res.succeeded:
                return domains
        raise _busy()

    async def _claims(self) -> _Snapshot:
        """Apps, custom domains and the global domain in one snapshot, with the guards that
        hold while none of them changed."""
        res = await self.store.txn([], [
            Op.get(APPS, prefix=True), Op.get(route_keys.DOMAINS_PREFIX, prefix=True),
            Op.get(route_keys.GLOBAL_DOMAIN_KEY)])
        apps_kvs, domain_kvs, global_kvs = res.responses
        apps = {kv.key[len(APPS):-len("/meta")] for kv in apps_kvs if kv.key.endswith("/meta")}
        custom: dict[str, list[str]] = {}
        ports: dict[str, int | None] = {}
        guards = [Compare.mod_is(route_keys.GLOBAL_DOMAIN_KEY,
                                 global_kvs[0].mod_revision if global_kvs else 0)]
        for kv in domain_kvs:
            app = kv.key[len(route_keys.DOMAINS_PREFIX):]
            data = json.loads(kv.value)
            custom[app], ports[app] = list(data.get("domains", [])), data.get("port")
            guards.append(Compare.mod_is(kv.key, kv.mod_revision))
        glob = json.loads(global_kvs[0].value).get("domain", "") if global_kvs else ""
        glob = glob or self.default_global_domain
        for app in apps - set(custom):  # a record made meanwhile must not go unseen
            guards.append(Compare.missing(route_keys.domains_key(app)))
        return _Snapshot(claims_rules.claims_from(apps, custom, str(glob)), guards, ports)

    async def set_domains(self, name: str, domains: list[str], port: int | None) -> None:
        """Replace an app's custom domains and dedicated port."""
        await self.get_app(name)
        await self.store.put(route_keys.domains_key(name),
                             route_keys.encode_domains(domains, port))

    async def ensure_routed(self, name: str) -> None:
        """Make the router serve the app: a domains record (empty when it only has
        APP.GLOBALDOMAIN) and, without a global domain, a dedicated port."""
        if not await self.global_domain():
            await self.allocate_port(name)
        elif await self.store.get(route_keys.domains_key(name)) is None:
            await self.store.create(route_keys.domains_key(name), route_keys.encode_domains([]))

    async def allocate_port(self, name: str, base: int = 10001) -> int:
        """A dedicated router port for an app without a global domain (stable once given)."""
        domains, port = await self.domains(name)
        if port:
            return port
        kvs, _ = await self.store.range(route_keys.DOMAINS_PREFIX)
        taken = {json.loads(kv.value).get("port") for kv in kvs}
        port = next(p for p in range(base, base + 5000) if p not in taken)
        await self.set_domains(name, domains, port)
        return port
