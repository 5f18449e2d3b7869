"""Dokku's ``certs`` commands: an app's certificate and key, checked, then kept in the store
for every machine's router (:mod:`shipmate.router.tlskeys`).

Nothing is stored unless :func:`shipmate.router.tls.check_pair` accepts the pair: a key that
does not match, an expired certificate, garbage, or a certificate for none of the app's
domains is refused and the app keeps what it had. The private key leaves the store only
through :meth:`Certs.show` (``certs:show APP key``); reports, errors and logs never hold it.

The reserved name ``shipmate`` (:data:`~shipmate.paas.domains.DASHBOARD`, which no app may
take) stands for the dashboard's route, ``shipmate.GLOBALDOMAIN``: ``certs:add shipmate CRT
KEY`` and the other commands act on its certificate as on an app's, without an app.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shipmate.errors import NotFoundError, ValidationError
from shipmate.paas.domains import DASHBOARD
from shipmate.paas.state import PaasState
from shipmate.router import tls, tlskeys
from shipmate.router.keys import validate_domain
from shipmate.store.base import Store

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
Wall = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The wall clock, in UTC (certificates are about dates, not monotonic time)."""
    return dt.datetime.now(dt.UTC)


class Certs:
    """An app's certificate: add, generate, report, show, remove, HSTS."""

    def __init__(self, store: Store, state: PaasState, *, wall: Wall = utcnow,
                 ca_bundle: Path = CA_BUNDLE) -> None:
        self.store, self.state, self.wall = store, state, wall
        self.ca_bundle = ca_bundle

    async def check_target(self, app: str) -> None:
        """Refuse an app that does not exist; ``shipmate`` (the dashboard's route) needs
        none."""
        if app != DASHBOARD:
            await self.state.get_app(app)

    async def app_domains(self, app: str) -> list[str]:
        """Every name the app answers on: ``APP.GLOBALDOMAIN`` and its custom domains (the
        dashboard: ``shipmate.GLOBALDOMAIN`` only)."""
        await self.check_target(app)
        custom, _ = await self.state.domains(app) if app != DASHBOARD else ([], None)
        glob = await self.state.global_domain()
        return sorted({*custom, *([f"{app}.{glob}"] if glob else [])})

    async def add(self, app: str, crt: bytes, key: bytes, *,
                  source: str = "manual") -> dict[str, Any]:
        """Check the pair against the app's domains, then store it; the report."""
        pair = tls.check_pair(crt, key, domains=await self._domains_or_refuse(app),
                              now=self.wall())
        await self.store.put(tlskeys.cert_key(app), tlskeys.encode_cert(
            pair.crt_pem, pair.key_pem, pair.info.sans, pair.info.not_after.isoformat(),
            source))
        return await self.report(app)

    async def add_tar(self, app: str, data: bytes) -> dict[str, Any]:
        """``certs:add APP < cert-key.tar`` (``server.crt`` and ``server.key``)."""
        crt, key = tls.read_tar(data)
        return await self.add(app, crt, key)

    async def generate(self, app: str, domains: Sequence[str]) -> dict[str, Any]:
        """``certs:generate APP [DOMAIN...]``: a self-signed certificate (for testing) for
        ``domains``, or for every name the app answers on."""
        names = [validate_domain(d) for d in domains] or await self._domains_or_refuse(app)
        crt, key = tls.generate_self_signed(names, now=self.wall())
        return await self.add(app, crt, key, source="self-signed")

    async def _domains_or_refuse(self, app: str) -> list[str]:
        domains = await self.app_domains(app)
        if not domains:
            raise ValidationError(f"{app} has no domain, so no certificate can serve it",
                                  hint="set one: domains:set-global DOMAIN" + (
                                      " (the dashboard answers at shipmate.DOMAIN)"
                                      if app == DASHBOARD else f" or domains:add {app} DOMAIN"))
        return domains

    async def record(self, app: str) -> tlskeys.CertRecord | None:
        """The app's stored certificate, if any."""
        kv = await self.store.get(tlskeys.cert_key(app))
        if kv is None:
            return None
        return tlskeys.decode_tls([(kv.key, kv.value)]).certs.get(app)

    async def hsts(self, app: str) -> bool:
        """Whether HSTS is on for the app."""
        kv = await self.store.get(tlskeys.options_key(app))
        return bool(kv and json.loads(kv.value).get("hsts") is True)

    async def report(self, app: str) -> dict[str, Any]:
        """``certs:report``: what the certificate says, never its key."""
        await self.check_target(app)
        rec = await self.record(app)
        out: dict[str, Any] = {"enabled": rec is not None, "hsts": await self.hsts(app),
                               "source": rec.source if rec else "", "hostnames": [],
                               "subject": "", "issuer": "", "starts_at": "", "expires_at": "",
                               "verified": "", "fingerprint": ""}
        if rec is None:
            return out
        info = tls.describe(tls.load_chain(rec.crt.encode())[0])
        roots = self.ca_bundle.read_bytes() if self.ca_bundle.is_file() else b""
        out.update(hostnames=list(info.sans), subject=info.subject, issuer=info.issuer,
                   starts_at=info.not_before.isoformat(), expires_at=info.not_after.isoformat(),
                   fingerprint=info.fingerprint,
                   verified=tls.verified(rec.crt.encode(), roots, now=self.wall()))
        return out

    async def show(self, app: str, part: str) -> str:
        """``certs:show APP crt|key``: the PEM."""
        if part not in ("crt", "key"):
            raise ValidationError(f"certs:show takes crt or key, not {part!r}")
        await self.check_target(app)
        rec = await self.record(app)
        if rec is None:
            raise NotFoundError(f"{app} has no certificate", hint=f"certs:add {app} CRT KEY")
        return rec.crt if part == "crt" else rec.key

    async def remove(self, app: str) -> None:
        """``certs:remove``: the app goes back to plain HTTP."""
        await self.check_target(app)
        if not await self.store.delete(tlskeys.cert_key(app)):
            raise NotFoundError(f"{app} has no certificate")

    async def set_option(self, app: str, name: str, value: str) -> dict[str, Any]:
        """``certs:set APP hsts true|false``."""
        await self.check_target(app)
        if name != "hsts":
            raise ValidationError(f"unknown certs property {name!r}", hint="certs:set APP hsts "
                                  "true|false")
        if value not in ("true", "false"):
            raise ValidationError(f"hsts takes true or false, not {value!r}")
        await self.store.put(tlskeys.options_key(app), tlskeys.encode_options(value == "true"))
        return await self.report(app)

    async def forget(self, app: str) -> None:
        """Drop the app's certificate and options (``apps:destroy``)."""
        await self.store.delete(tlskeys.cert_key(app))
        await self.store.delete(tlskeys.options_key(app))


def decode_pem_body(body: dict[str, Any]) -> tuple[bytes, bytes] | bytes:
    """The API body of ``certs:add``: ``{"crt", "key"}`` PEM text, or ``{"tar"}`` base64."""
    if isinstance(body.get("tar"), str):
        try:
            return base64.b64decode(body["tar"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("tar must be base64") from None
    crt, key = body.get("crt"), body.get("key")
    if not isinstance(crt, str) or not isinstance(key, str):
        raise ValidationError("give crt and key (PEM text), or tar (base64)")
    return crt.encode(), key.encode()
