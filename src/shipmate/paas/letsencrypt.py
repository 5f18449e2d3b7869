"""dokku-letsencrypt's commands, built in: certificates from an ACME CA (Let's Encrypt by
default), answered over HTTP-01 by every router, renewed by the scheduler leader.

Store keys (JSON):

- ``/shipmate/acme/settings``: ``{"email", "server", "eab-kid", "eab-hmac-key",
  "auto-renew"}`` (``letsencrypt:set --global``, ``letsencrypt:cron-job``)
- ``/shipmate/acme/account``: ``{"key": PEM, "uris": {directory URL: account URI}}``: the
  account key is made once and kept; the account is registered once per ACME server.
- ``/shipmate/acme/apps/<app>``: a :class:`~shipmate.paas.renewal.AcmeApp` (enabled, and how
  the last attempt went).

``shipmate`` names the dashboard's route (``shipmate.GLOBALDOMAIN``), as in
:mod:`~shipmate.paas.certs`: ``letsencrypt:enable shipmate`` needs no app.

An issuance: order -> publish each HTTP-01 answer under ``/shipmate/tls/challenges/`` -> wait
until every live router serves it -> answer -> finalize -> store the certificate through
:class:`~shipmate.paas.certs.Certs` (so it is checked like any other) -> remove the answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from shipmate.clock import Clock, SystemClock
from shipmate.errors import NotFoundError, ShipmateError, ValidationError
from shipmate.paas import renewal
from shipmate.paas.acme_client import (
    AcmeSession,
    AcmeSettings,
    Pending,
    new_account_key,
    new_cert_key,
)
from shipmate.paas.certs import Certs
from shipmate.router import tlskeys
from shipmate.router.progress import LocalRouter, wait_routers
from shipmate.spec.names import validate_app_name
from shipmate.store.base import Op, Store

log = logging.getLogger(__name__)
Emit = Callable[[str], None]

ACME_PREFIX = "/shipmate/acme/"
SETTINGS_KEY = ACME_PREFIX + "settings"
ACCOUNT_KEY = ACME_PREFIX + "account"
APPS_PREFIX = ACME_PREFIX + "apps/"
PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SETTING_NAMES = ("email", "server", "eab-kid", "eab-hmac-key", "auto-renew")


def app_key(app: str) -> str:
    """Key of an app's letsencrypt record."""
    return APPS_PREFIX + validate_app_name(app)


def server_url(value: str) -> str:
    """dokku-letsencrypt's ``server`` values: ``default`` (production), ``staging``, a URL."""
    if value in ("", "default", "production"):
        return PRODUCTION
    if value == "staging":
        return STAGING
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValidationError(f"invalid ACME server {value!r}",
                              hint="use default, staging or the directory's https:// URL")
    return value


class Session(Protocol):
    """What an issuance needs of an ACME client (:class:`AcmeSession`; a fake in tests)."""

    def register(self) -> str:
        """The account's URI (made when new)."""
        ...

    def order(self, domains: list[str], cert_key_pem: str) -> tuple[Any, list[Pending]]:
        """A new order and its challenges."""
        ...

    def answer(self, pending: Pending) -> None:
        """Tell the CA a challenge answer is published."""
        ...

    def finalize(self, orderr: Any) -> str:
        """The issued full chain, PEM."""
        ...

    def revoke(self, crt_pem: str) -> None:
        """Revoke a certificate."""
        ...


SessionFactory = Callable[[AcmeSettings, str, str], Session]


class LetsEncrypt:
    """Issue, renew and revoke an app's certificate with ACME."""

    def __init__(self, store: Store, certs: Certs, *, ca_bundle: str = "",
                 router: LocalRouter | None = None, clock: Clock | None = None,
                 router_timeout: float = 30.0,
                 session: SessionFactory = AcmeSession) -> None:
        self.store, self.certs, self.ca_bundle = store, certs, ca_bundle
        self._new_session = session
        self.router, self.clock = router, clock or SystemClock()
        self.router_timeout = router_timeout
        self._lock = asyncio.Lock()  # one issuance at a time on this machine

    # settings -----------------------------------------------------------------------------

    async def settings(self) -> dict[str, Any]:
        """The global settings, with defaults."""
        kv = await self.store.get(SETTINGS_KEY)
        data = json.loads(kv.value) if kv else {}
        return {"email": "", "server": PRODUCTION, "eab-kid": "", "eab-hmac-key": "",
                "auto-renew": True, **data}

    async def settings_report(self) -> dict[str, Any]:
        """The settings as shown: the EAB HMAC key is a secret."""
        out = await self.settings()
        out["eab-hmac-key"] = "<set>" if out["eab-hmac-key"] else ""
        return out

    async def set_global(self, name: str, value: str) -> dict[str, Any]:
        """``letsencrypt:set --global NAME VALUE`` ('' unsets)."""
        if name not in SETTING_NAMES:
            raise ValidationError(f"unknown letsencrypt property {name!r}",
                                  hint="one of: " + ", ".join(SETTING_NAMES))
        current = await self.settings()
        parsed: Any = value
        if name == "server":
            parsed = server_url(value)
        elif name == "auto-renew":
            parsed = value != "false"
        elif name == "email" and value and ("@" not in value or any(c.isspace() for c in value)):
            raise ValidationError(f"invalid email {value!r}")
        await self.store.put(SETTINGS_KEY, json.dumps({**current, name: parsed}, sort_keys=True))
        return await self.settings_report()

    async def _acme_settings(self) -> AcmeSettings:
        s = await self.settings()
        return AcmeSettings(s["server"], s["email"], s["eab-kid"], s["eab-hmac-key"],
                            self.ca_bundle)

    # the account ----------------------------------------------------------------------------

    async def _session(self, emit: Emit) -> Session:
        """A session on the configured server with the kept account (made when missing)."""
        settings = await self._acme_settings()
        kv = await self.store.get(ACCOUNT_KEY)
        if kv is None:
            emit("-----> Making the ACME account key (once)")
            fresh = json.dumps({"key": await asyncio.to_thread(new_account_key), "uris": {}})
            await self.store.create(ACCOUNT_KEY, fresh)  # another machine's may win: use it
            kv = await self.store.get(ACCOUNT_KEY)
            assert kv is not None
        account = json.loads(kv.value)
        uri = str(account.get("uris", {}).get(settings.server, ""))
        session = await asyncio.to_thread(self._new_session, settings, account["key"], uri)
        if not uri:
            emit(f"-----> Registering with {settings.server}")
            uri = await asyncio.to_thread(session.register)
            account.setdefault("uris", {})[settings.server] = uri
            await self.store.put(ACCOUNT_KEY, json.dumps(account, sort_keys=True))
        return session

    # commands -------------------------------------------------------------------------------

    async def enable(self, app: str, emit: Emit) -> None:
        """``letsencrypt:enable``: issue now (again, if it has one) and renew from then on."""
        await self.certs.check_target(app)
        kv = await self.store.get(app_key(app))
        record = renewal.AcmeApp.from_json(kv.value) if kv else renewal.AcmeApp()
        if kv is None:
            await self.store.put(app_key(app), record.to_json())
        await self._attempt(app, record, emit)

    async def _attempt(self, app: str, record: renewal.AcmeApp, emit: Emit) -> None:
        """One issuance, its outcome recorded in the app's record."""
        try:
            await self.issue(app, emit)
        except ShipmateError as exc:
            now = self.certs.wall()
            after = renewal.failed(record, exc.message, now)
            await self._save(app, after)
            raise
        await self._save(app, renewal.succeeded(record, self.certs.wall()))

    async def _save(self, app: str, record: renewal.AcmeApp) -> None:
        # Only while enabled: a disable meanwhile wins.
        if await self.store.get(app_key(app)) is not None:
            await self.store.put(app_key(app), record.to_json())

    async def issue(self, app: str, emit: Emit) -> None:
        """Order, validate over HTTP-01 on every router, store the certificate."""
        async with self._lock:
            domains = await self.certs.app_domains(app)
            if not domains:
                raise ValidationError(f"{app} has no domain to get a certificate for",
                                      hint=f"domains:add {app} DOMAIN, or domains:set-global")
            session = await self._session(emit)
            emit(f"-----> Ordering a certificate for {', '.join(domains)}")
            key_pem = await asyncio.to_thread(new_cert_key)
            order, pending = await asyncio.to_thread(session.order, domains, key_pem)
            keys = [tlskeys.challenge_key(p.token) for p in pending]
            try:
                await self._publish(pending, emit)
                for p in pending:
                    await asyncio.to_thread(session.answer, p)
                emit("-----> Waiting for the CA to validate and issue")
                chain = await asyncio.to_thread(session.finalize, order)
            finally:
                if keys:
                    await self.store.txn([], [Op.delete(k) for k in keys])
            await self.certs.add(app, chain.encode(), key_pem.encode(), source="letsencrypt")
            emit(f"=====> Certificate installed for {', '.join(domains)}")

    async def _publish(self, pending: Sequence[Pending], emit: Emit) -> None:
        if not pending:
            return
        res = await self.store.txn([], [
            Op.put(tlskeys.challenge_key(p.token),
                   tlskeys.encode_challenge(p.token, p.keyauth, p.domain)) for p in pending])
        late = await wait_routers(self.store, res.revision, timeout=self.router_timeout,
                                  clock=self.clock, local=self.router)
        if late:
            emit(f" !     Routers not serving the challenge yet: {', '.join(late)}")

    async def disable(self, app: str) -> None:
        """``letsencrypt:disable``: no more renewals, and the certificate goes."""
        await self.certs.check_target(app)
        if await self.store.get(app_key(app)) is None:
            raise NotFoundError(f"letsencrypt is not enabled for {app}")
        await self.store.delete(app_key(app))
        rec = await self.certs.record(app)
        if rec is not None and rec.source == "letsencrypt":
            await self.certs.remove(app)

    async def revoke(self, app: str, emit: Emit) -> None:
        """``letsencrypt:revoke``: revoke at the CA, then remove it and stop renewing."""
        await self.certs.check_target(app)
        rec = await self.certs.record(app)
        if rec is None or rec.source != "letsencrypt":
            raise NotFoundError(f"{app} has no certificate from letsencrypt")
        session = await self._session(emit)
        await asyncio.to_thread(session.revoke, rec.crt)
        await self.store.delete(app_key(app))
        await self.certs.remove(app)
        emit(f"-----> Revoked and removed the certificate of {app}")

    async def records(self) -> dict[str, renewal.AcmeApp]:
        """Every app with letsencrypt enabled."""
        kvs, _ = await self.store.range(APPS_PREFIX)
        out = {}
        for kv in kvs:
            try:
                out[kv.key[len(APPS_PREFIX):]] = renewal.AcmeApp.from_json(kv.value)
            except ValueError:
                log.warning("letsencrypt: unreadable record %s", kv.key)
        return out

    async def _expiries(self, apps: Sequence[str]) -> dict[str, Any]:
        out = {}
        for app in apps:
            rec = await self.certs.record(app)
            out[app] = (renewal.parse_time(rec.not_after)
                        if rec is not None and rec.source == "letsencrypt" else None)
        return out

    async def listing(self) -> list[dict[str, Any]]:
        """``letsencrypt:list``: expiry, next renewal, last error."""
        records = await self.records()
        expiries = await self._expiries(sorted(records))
        rows = []
        for app, rec in sorted(records.items()):
            nxt = renewal.next_renewal(rec, expiries[app])
            rows.append({"app": app, "expires": _iso(expiries[app]),
                         "renewal": _iso(nxt) if nxt else "now",
                         "failures": rec.failures, "last_error": rec.last_error or "-"})
        return rows

    async def renew_due(self, emit: Emit, apps: Sequence[str] | None = None) -> list[str]:
        """Renew the apps that are due (``apps``: only those, due or not); the ones that
        failed. Each outcome is recorded (backoff, last error)."""
        records = await self.records()
        if apps is not None:
            missing = [a for a in apps if a not in records]
            if missing:
                raise NotFoundError(f"letsencrypt is not enabled for {missing[0]}")
            todo = list(apps)
        else:
            todo = renewal.due_apps(records, await self._expiries(sorted(records)),
                                    self.certs.wall())
        failures = []
        for app in todo:
            emit(f"-----> Renewing the certificate of {app}")
            try:
                await self._attempt(app, records[app], emit)
            except ShipmateError as exc:
                emit(f" !     {app}: {exc.message}")
                failures.append(app)
        return failures


def _iso(when: Any) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else "-"


@dataclasses.dataclass
class Renewer:
    """The daemon component: on the scheduler leader only, renew what is due, then sleep."""

    le: LetsEncrypt
    is_leader: Callable[[], bool]
    interval: float = 3600.0
    clock: Clock = dataclasses.field(default_factory=SystemClock)

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            try:
                if self.is_leader() and (await self.le.settings())["auto-renew"]:
                    await self.le.renew_due(lambda line: log.info("letsencrypt: %s",
                                                                   line.strip()))
            except ShipmateError as exc:
                log.warning("letsencrypt: renewal pass failed: %s", exc)
