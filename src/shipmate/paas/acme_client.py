"""One conversation with an ACME server (RFC 8555) through certbot's ``acme`` library: the one
module that sees it. Blocking (the library uses requests): callers run each call in a thread.

Only HTTP-01 is used: the challenge answers are put in the store by the caller and served by
every router (:mod:`shipmate.router.tlskeys`), so validation works whichever machine the CA
reaches. Every library and network failure is mapped here to :class:`AcmeError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKRSA

from shipmate.errors import ShipmateError

USER_AGENT = "shipmate"


class AcmeError(ShipmateError):
    """The ACME server refused, or could not be reached."""

    status = 502
    code = "acme"


@dataclasses.dataclass(frozen=True)
class AcmeSettings:
    """Where and as whom: ``letsencrypt:set --global`` values."""

    server: str
    email: str = ""
    eab_kid: str = ""
    eab_hmac_key: str = ""
    ca_bundle: str = ""  # verify the ACME server with this CA file ("" = the system's)


@dataclasses.dataclass(frozen=True)
class Pending:
    """An HTTP-01 challenge to publish, then answer."""

    domain: str
    token: str
    keyauth: str
    body: messages.ChallengeBody = dataclasses.field(repr=False)


def new_account_key() -> str:
    """A new RSA 2048 account key, PEM (made once, then kept in the store)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def new_cert_key() -> str:
    """A new ECDSA P-256 key for a certificate, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """The one place library and network exceptions become AcmeError (their text only)."""
    try:
        yield
    except messages.Error as exc:
        raise AcmeError(f"{what}: the ACME server said {exc.typ}: {exc.detail}") from None
    except errors.ValidationError as exc:
        raise AcmeError(f"{what}: validation failed: {_authz_errors(exc)}",
                        hint="is every domain's DNS pointing at a Shipmate machine, and is "
                             "the router's HTTP port reachable from the CA?") from None
    except errors.TimeoutError:
        raise AcmeError(f"{what}: the ACME server did not finish in time") from None
    except (errors.Error, requests.RequestException, ValueError) as exc:
        raise AcmeError(f"{what}: {type(exc).__name__}: {exc}") from None


def _authz_errors(exc: errors.ValidationError) -> str:
    out = []
    for authzr in exc.failed_authzrs:
        for chall in authzr.body.challenges:
            if chall.error is not None:
                out.append(f"{authzr.body.identifier.value}: {chall.error.detail}")
    return "; ".join(out) or "an authorization was refused"


class AcmeSession:
    """A client of one ACME directory with one account key."""

    def __init__(self, settings: AcmeSettings, account_key_pem: str,
                 account_uri: str = "") -> None:
        key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AcmeError("the ACME account key is not an RSA key")
        self.settings = settings
        self.key = JWKRSA(key=key)
        account = (messages.RegistrationResource(uri=account_uri, body=messages.Registration())
                   if account_uri else None)
        self.net = client.ClientNetwork(self.key, account=account, user_agent=USER_AGENT)
        if settings.ca_bundle:
            # requests takes a CA file where the library declares a bool.
            self.net.verify_ssl = settings.ca_bundle  # type: ignore[assignment]
        with _mapped(f"reading the directory {settings.server}"):
            self.directory = client.ClientV2.get_directory(settings.server, self.net)
        self.acme = client.ClientV2(self.directory, self.net)

    def register(self) -> str:
        """Make (or find) the account for this key; its URI."""
        s = self.settings
        eab = None
        if s.eab_kid and s.eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self.key.public_key(), kid=s.eab_kid,
                hmac_key=s.eab_hmac_key, directory=self.directory)
        reg = messages.NewRegistration.from_data(
            email=s.email or None, terms_of_service_agreed=True,
            external_account_binding=eab)
        with _mapped("registering the ACME account"):
            try:
                regr = self.acme.new_account(reg)
            except errors.ConflictError as exc:  # the key has an account: its location
                uri = str(exc.location)
                self.net.account = messages.RegistrationResource(
                    uri=uri, body=messages.Registration())
                return uri
        return str(regr.uri)

    def order(self, domains: list[str], cert_key_pem: str
              ) -> tuple[messages.OrderResource, list[Pending]]:
        """A new order for ``domains``: the order and its HTTP-01 challenges still to do."""
        csr = crypto_util.make_csr(cert_key_pem.encode(), domains)
        with _mapped("ordering a certificate"):
            orderr = self.acme.new_order(csr)
        pending = []
        for authzr in orderr.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue  # validated recently: nothing to answer
            chall = next((c for c in authzr.body.challenges
                          if isinstance(c.chall, challenges.HTTP01)), None)
            if chall is None:
                raise AcmeError(f"the ACME server offers no HTTP-01 challenge for "
                                f"{authzr.body.identifier.value}")
            http01: Any = chall.chall
            pending.append(Pending(str(authzr.body.identifier.value), http01.encode("token"),
                                   str(http01.key_authorization(self.key)), chall))
        return orderr, pending

    def answer(self, pending: Pending) -> None:
        """Tell the server the challenge answer is published."""
        with _mapped(f"answering the challenge for {pending.domain}"):
            self.acme.answer_challenge(pending.body, pending.body.chall.response(self.key))

    def finalize(self, orderr: messages.OrderResource, timeout: float = 90.0) -> str:
        """Wait for the validations, finalize, and return the full chain (PEM)."""
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
        with _mapped("getting the certificate"):
            done = self.acme.poll_and_finalize(orderr, deadline)
        if not done.fullchain_pem:
            raise AcmeError("the ACME server gave no certificate")
        return str(done.fullchain_pem)

    def revoke(self, crt_pem: str) -> None:
        """Revoke the certificate (reason: unspecified)."""
        cert = x509.load_pem_x509_certificates(crt_pem.encode())[0]
        with _mapped("revoking the certificate"):
            self.acme.revoke(cert, 0)
