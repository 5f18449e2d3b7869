"""The router's TLS store keys: certificates, per-app HTTPS options and ACME HTTP-01
challenges. Encoding (for writers) and decoding (for the router). Pure: no I/O.

Store keys (values are UTF-8 JSON; docs/https.md gives the contract):

- ``/shipmate/tls/certs/<app>`` -> ``{"crt": PEM chain, "key": PEM key, "names": [...],
  "not_after": ISO 8601, "source": "manual" | "self-signed" | "letsencrypt"}``. Written
  only after :func:`shipmate.router.tls.check_pair` accepted the pair. Every router writes it
  to a file of its own nginx prefix (mode 0600), so every machine serves HTTPS.
- ``/shipmate/tls/options/<app>`` -> ``{"hsts": true}`` (``certs:set APP hsts true``).
- ``/shipmate/tls/challenges/<token>`` -> ``{"keyauth": "TOKEN.THUMBPRINT", "domain": ...}``:
  an ACME HTTP-01 answer every router serves at ``/.well-known/acme-challenge/TOKEN``.

Like :func:`shipmate.router.keys.decode`, decoding never raises for one bad record.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence

from shipmate.errors import ValidationError
from shipmate.router.keys import validate_domain
from shipmate.spec.names import validate_app_name

TLS_PREFIX = "/shipmate/tls/"
CERTS_PREFIX = TLS_PREFIX + "certs/"
OPTIONS_PREFIX = TLS_PREFIX + "options/"
CHALLENGES_PREFIX = TLS_PREFIX + "challenges/"
SOURCES = ("manual", "self-signed", "letsencrypt")

# ACME tokens and key authorizations are base64url (RFC 8555 8.1, 8.3): nothing in them can
# end a quoted nginx string or a location.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
_KEYAUTH = re.compile(r"^[A-Za-z0-9_-]{16,256}\.[A-Za-z0-9_-]{16,128}$")
_PEM_MAX = 256 * 1024


@dataclasses.dataclass(frozen=True)
class CertRecord:
    """An app's certificate as the router needs it (the key is never shown in a repr)."""

    crt: str = dataclasses.field(repr=False)
    key: str = dataclasses.field(repr=False)
    names: tuple[str, ...] = ()
    not_after: str = ""
    source: str = "manual"


@dataclasses.dataclass(frozen=True)
class Challenge:
    """One pending ACME HTTP-01 challenge."""

    token: str
    keyauth: str
    domain: str = ""


@dataclasses.dataclass(frozen=True)
class TlsInput:
    """Every TLS record found in the store, decoded."""

    certs: Mapping[str, CertRecord] = dataclasses.field(default_factory=dict)
    hsts: frozenset[str] = frozenset()
    challenges: tuple[Challenge, ...] = ()
    problems: tuple[str, ...] = ()


# -- encoding ---------------------------------------------------------------------------------


def cert_key(app: str) -> str:
    """Key of an app's certificate and private key."""
    return CERTS_PREFIX + validate_app_name(app)


def options_key(app: str) -> str:
    """Key of an app's HTTPS options (HSTS)."""
    return OPTIONS_PREFIX + validate_app_name(app)


def challenge_key(token: str) -> str:
    """Key of one HTTP-01 challenge answer."""
    return CHALLENGES_PREFIX + validate_token(token)


def validate_token(token: str) -> str:
    """``token`` if it is an ACME token (base64url), else raise."""
    if not _TOKEN.fullmatch(token):
        raise ValidationError(f"invalid ACME token {token[:40]!r}")
    return token


def encode_cert(crt: str, key: str, names: Sequence[str], not_after: str,
                source: str) -> str:
    """JSON value for :func:`cert_key` (the pair must have been checked already)."""
    if source not in SOURCES:
        raise ValidationError(f"unknown certificate source {source!r}")
    return json.dumps({"crt": crt, "key": key, "names": sorted(names), "not_after": not_after,
                       "source": source}, sort_keys=True)


def encode_options(hsts: bool) -> str:
    """JSON value for :func:`options_key`."""
    return json.dumps({"hsts": bool(hsts)})


def encode_challenge(token: str, keyauth: str, domain: str) -> str:
    """JSON value for :func:`challenge_key`."""
    check_keyauth(token, keyauth)
    return json.dumps({"keyauth": keyauth, "domain": validate_domain(domain)}, sort_keys=True)


def check_keyauth(token: str, keyauth: str) -> str:
    """``keyauth`` if it is ``token`` + "." + a base64url thumbprint, else raise."""
    validate_token(token)
    if not _KEYAUTH.fullmatch(keyauth) or not keyauth.startswith(token + "."):
        raise ValidationError("invalid ACME key authorization")
    return keyauth


# -- decoding ---------------------------------------------------------------------------------


def decode_tls(pairs: Iterable[tuple[str, bytes]]) -> TlsInput:
    """Decode the key/value pairs under :data:`TLS_PREFIX` (other keys are ignored)."""
    certs: dict[str, CertRecord] = {}
    hsts: set[str] = set()
    challenges: list[Challenge] = []
    problems: list[str] = []
    for key, raw in sorted(pairs):
        try:
            if key.startswith(CERTS_PREFIX):
                app = validate_app_name(key[len(CERTS_PREFIX):])
                certs[app] = _decode_cert(json.loads(raw))
            elif key.startswith(OPTIONS_PREFIX):
                app = validate_app_name(key[len(OPTIONS_PREFIX):])
                if _obj(json.loads(raw)).get("hsts") is True:
                    hsts.add(app)
            elif key.startswith(CHALLENGES_PREFIX):
                challenges.append(_decode_challenge(key[len(CHALLENGES_PREFIX):],
                                                    json.loads(raw)))
        except (ValueError, ValidationError) as exc:
            problems.append(f"{key}: {exc.message if isinstance(exc, ValidationError) else exc}")
    return TlsInput(certs, frozenset(hsts), tuple(challenges), tuple(problems))


def _obj(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValidationError("value is not a JSON object")
    return value


def _decode_cert(value: object) -> CertRecord:
    body = _obj(value)
    crt, key = body.get("crt"), body.get("key")
    # nginx checks the rest (nginx -t); a record that fails leaves only its app out.
    if not isinstance(crt, str) or "-----BEGIN CERTIFICATE-----" not in crt:
        raise ValidationError("field 'crt' is not a PEM certificate")
    if not isinstance(key, str) or "PRIVATE KEY-----" not in key:
        raise ValidationError("field 'key' is not a PEM private key")
    if len(crt) + len(key) > _PEM_MAX:
        raise ValidationError("the certificate record is too large")
    names = body.get("names") or []
    if not isinstance(names, list):
        raise ValidationError("field 'names' is not a list")
    # Certificate names may be wildcards; keep the ones that are DNS names once "*." is off.
    good = tuple(sorted({str(n).lower() for n in names if isinstance(n, str)
                         and _is_name(n.removeprefix("*."))}))
    return CertRecord(crt, key, good, str(body.get("not_after") or ""),
                      str(body.get("source") or "manual"))


def _is_name(name: str) -> bool:
    try:
        validate_domain(name)
    except ValidationError:
        return False
    return True


def _decode_challenge(token: str, value: object) -> Challenge:
    body = _obj(value)
    keyauth = body.get("keyauth")
    if not isinstance(keyauth, str):
        raise ValidationError("field 'keyauth' is missing")
    check_keyauth(token, keyauth)
    return Challenge(token, keyauth, str(body.get("domain") or ""))


def covered(domains: Iterable[str], names: Iterable[str]) -> tuple[str, ...]:
    """The ``domains`` some certificate name covers (``*.x`` covers one label), sorted."""
    pats = [n.lower() for n in names]
    out = []
    for d in domains:
        head, _, rest = d.partition(".")
        if d in pats or (head and f"*.{rest}" in pats):
            out.append(d)
    return tuple(sorted(out))
