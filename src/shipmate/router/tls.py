"""Certificates for the router: reading, checking and describing them. Pure: no I/O.

A certificate reaches Shipmate as PEM text (``certs:add APP CRT KEY``), as a tar holding
``server.crt`` and ``server.key`` (Dokku's ``certs:add APP < cert-key.tar``), or is made here
(``certs:generate``, self-signed, for testing). Before anything is stored it must be a
certificate (with its chain, if any) whose public key matches the private key, valid now, and
covering at least one of the app's domains; otherwise :class:`ValidationError` says which.

Renewal decisions (:func:`renewal_due`) are pure too: the ACME side asks them with a clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import tarfile
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from shipmate.errors import ValidationError

MAX_PEM_BYTES = 256 * 1024  # a chain of a few certificates is a few kB
RENEW_BEFORE = dt.timedelta(days=30)
TAR_NAMES = ("server.crt", "server.key")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclasses.dataclass(frozen=True)
class CertInfo:
    """What ``certs:report`` shows of a certificate."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    self_signed: bool
    fingerprint: str  # SHA-256 of the DER, hex

    def to_json(self) -> dict[str, object]:
        """JSON-able form (times in ISO 8601, UTC)."""
        out = dataclasses.asdict(self)
        out["sans"] = list(self.sans)
        out["not_before"] = self.not_before.isoformat()
        out["not_after"] = self.not_after.isoformat()
        return out


@dataclasses.dataclass(frozen=True)
class CertPair:
    """A checked certificate chain (leaf first) and its private key, both PEM."""

    crt_pem: str
    key_pem: str
    info: CertInfo


def _refuse(message: str, hint: str) -> ValidationError:
    return ValidationError(message, hint=hint)


def load_chain(crt_pem: bytes) -> list[x509.Certificate]:
    """The certificates in ``crt_pem``, leaf first; refuses anything that is not PEM."""
    if len(crt_pem) > MAX_PEM_BYTES:
        raise _refuse("the certificate file is too large", "give the PEM certificate and its chain")
    try:
        chain = x509.load_pem_x509_certificates(crt_pem)
    except ValueError:
        raise _refuse("the certificate is not a PEM certificate",
                      "give a file that starts with -----BEGIN CERTIFICATE-----") from None
    return chain


def load_key(key_pem: bytes) -> PrivateKey:
    """The private key in ``key_pem`` (RSA or EC, unencrypted PEM)."""
    if len(key_pem) > MAX_PEM_BYTES:
        raise _refuse("the key file is too large", "give the PEM private key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise _refuse("the private key is not an unencrypted PEM key",
                      "give the key without a passphrase (openssl rsa -in KEY -out KEY.plain)"
                      ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _refuse("the private key is neither RSA nor EC", "use an RSA or ECDSA key")
    return key


def describe(cert: x509.Certificate) -> CertInfo:
    """Subject, issuer, names and validity of one certificate."""
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=subject_names(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=cert.issuer == cert.subject,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def subject_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names the certificate is for: its SANs, or its CN when it has none."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = ext.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(n.lower() for n in names)


def covers(name: str, domain: str) -> bool:
    """Whether certificate name ``name`` (maybe ``*.x``) covers ``domain`` (RFC 6125: one label)."""
    name, domain = name.lower(), domain.lower()
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return name == domain


def check_pair(crt_pem: bytes, key_pem: bytes, *, domains: Sequence[str],
               now: dt.datetime) -> CertPair:
    """Check a certificate and key before they are stored; see the module docstring."""
    chain = load_chain(crt_pem)
    key = load_key(key_pem)
    leaf = chain[0]
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        raise _refuse("the private key does not match the certificate",
                      "give the key the certificate was issued for")
    info = describe(leaf)
    if info.not_after <= now:
        raise _refuse(f"the certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC",
                      "renew it, or use letsencrypt:enable or certs:generate")
    if info.not_before > now:
        raise _refuse(f"the certificate is not valid before {info.not_before:%Y-%m-%d %H:%M} UTC",
                      "check the clock of the machine that made it")
    if domains and not any(covers(n, d) for n in info.sans for d in domains):
        raise _refuse(
            f"the certificate is for {', '.join(info.sans) or 'no name'}, "
            f"none of the app's domains ({', '.join(domains)})",
            "add the domain first (domains:add), or give a certificate for it")
    return CertPair(_pem_text(chain), key_pem.decode("ascii"), info)


def _public_bytes(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem_text(chain: Iterable[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain)


def read_tar(data: bytes) -> tuple[bytes, bytes]:
    """``(server.crt, server.key)`` from a tar, as Dokku's ``certs:add APP < cert-key.tar``.

    Only those two regular files are read (anywhere in the tar, by base name); nothing is
    written to disk, so names like ``../x`` or links cannot reach a path."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in TAR_NAMES and member.isreg() and member.size <= MAX_PEM_BYTES:
                    f = tar.extractfile(member)
                    if f is not None:
                        found[base] = f.read()
    except (tarfile.TarError, EOFError, OSError):
        raise _refuse("standard input is not a tar archive",
                      "tar cf cert-key.tar server.crt server.key, then certs:add APP < cert-key.tar"
                      ) from None
    missing = [n for n in TAR_NAMES if n not in found]
    if missing:
        raise _refuse(f"the tar holds no {' or '.join(missing)}",
                      "put the certificate in server.crt and its key in server.key")
    return found["server.crt"], found["server.key"]


def generate_self_signed(domains: Sequence[str], *, now: dt.datetime,
                         days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate (ECDSA P-256) for ``domains``: ``(crt_pem, key_pem)``."""
    if not domains:
        raise _refuse("no domain to make a certificate for",
                      "give one (certs:generate APP DOMAIN) or add one with domains:add")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def renewal_due(not_after: dt.datetime, now: dt.datetime,
                before: dt.timedelta = RENEW_BEFORE) -> bool:
    """Whether a certificate expiring at ``not_after`` should be renewed at ``now``."""
    return now >= not_after - before
