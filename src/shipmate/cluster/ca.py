"""The cluster CA and this machine's certificate: where they live, how they are made.

Every path of the cluster's key material is named here and nowhere else (``shipmate backup``
takes them from :func:`pki_files`):

- ``STATE_DIR/pki/`` (0700): ``ca.crt`` (every machine), ``ca.key`` (only the machine that
  ran ``cluster init``: it signs the joiners' certificates), ``machine.crt`` /
  ``machine.key`` (this machine: etcd's server, peer and client certificate, and the TCP
  API's server and client certificate).

A machine certificate names the machine (``DNS:NAME``, ``DNS:localhost``) and its addresses
(``IP:ADDRESS``, ``IP:127.0.0.1``) and is good for both TLS server and client use, as etcd's
members use one certificate for both sides of a peer connection.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shipmate.errors import ValidationError

PKI_DIR = "pki"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
MACHINE_CERT = "machine.crt"
MACHINE_KEY = "machine.key"
CA_DAYS = 3650
MACHINE_DAYS = 825  # the longest a browser would accept; rotate with `cluster init --rotate`


@dataclasses.dataclass(frozen=True)
class Pki:
    """The files of one machine's PKI directory."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        """The cluster CA's certificate (trusted by every machine)."""
        return self.dir / CA_CERT

    @property
    def ca_key(self) -> Path:
        """The CA's private key (only on the machine that signs joins)."""
        return self.dir / CA_KEY

    @property
    def cert(self) -> Path:
        """This machine's certificate."""
        return self.dir / MACHINE_CERT

    @property
    def key(self) -> Path:
        """This machine's private key."""
        return self.dir / MACHINE_KEY

    def ready(self) -> bool:
        """True when the CA certificate and this machine's key pair are there."""
        return all(p.is_file() for p in (self.ca_cert, self.cert, self.key))

    def can_sign(self) -> bool:
        """True on the machine holding the CA key."""
        return self.ca_key.is_file() and self.ca_cert.is_file()


def pki(state_dir: Path) -> Pki:
    """The PKI directory under ``state_dir``."""
    return Pki(Path(state_dir) / PKI_DIR)


def pki_files(state_dir: Path) -> list[Path]:
    """Every key and certificate file of the machine's PKI that exists (for backups)."""
    p = pki(state_dir)
    return [f for f in (p.ca_cert, p.ca_key, p.cert, p.key) if f.is_file()]


def make_dir(p: Pki) -> None:
    """The PKI directory, 0700."""
    p.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(p.dir, 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (etcd, gRPC and OpenSSL all take it)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the file is 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(cluster: str) -> tuple[bytes, bytes]:
    """A new self-signed cluster CA: (certificate PEM, key PEM)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"shipmate cluster {cluster} CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def make_csr(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    """A certificate request for machine ``name`` (the signer sets the names and addresses)."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def sign(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, name: str,
         addresses: list[str], *, days: int = MACHINE_DAYS) -> bytes:
    """Sign a machine's request: a certificate for ``name`` and ``addresses`` (plus localhost
    and 127.0.0.1), for TLS servers and clients. The request's own names are ignored: the
    signer decides what the machine is called. Refuses a request whose signature is bad."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValidationError(f"not a certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise ValidationError("the certificate request's signature is not valid")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValidationError("the CA key is not an EC key")
    ips = {ipaddress.ip_address(a) for a in [*addresses, "127.0.0.1"]}
    san = x509.SubjectAlternativeName(
        [x509.DNSName(name), x509.DNSName("localhost"),
         *(x509.IPAddress(ip) for ip in sorted(ips, key=str))])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate's DER form, lowercase hex (what a join
    token pins)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def common_name(cert_pem: bytes) -> str:
    """The certificate's subject CN (a machine certificate's machine name)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def create_ca(p: Pki, cluster: str) -> None:
    """Make the cluster CA in ``p`` (refuses to replace one)."""
    if p.ca_cert.exists():
        raise ValidationError(f"{p.ca_cert} exists already: this machine is in a cluster",
                              hint="`shipmate cluster leave` first, or keep the cluster")
    make_dir(p)
    cert, key = make_ca(cluster)
    write_private(p.ca_key, key)
    write_private(p.ca_cert, cert)


def issue_own(p: Pki, name: str, addresses: list[str]) -> None:
    """Sign this machine's own certificate with the CA in ``p`` (``cluster init``)."""
    key = new_key()
    cert = sign(p.ca_cert.read_bytes(), p.ca_key.read_bytes(), make_csr(key, name), name,
                addresses)
    write_private(p.key, key_pem(key))
    write_private(p.cert, cert)
