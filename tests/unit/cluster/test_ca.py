"""The cluster CA: machine certificates name the machine and its addresses, serve both TLS
sides, chain to the CA; a bad request is refused; fingerprints pin the CA."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from shipmate.cluster import ca
from shipmate.errors import ValidationError


def test_a_machine_certificate_names_the_machine_and_its_addresses(tmp_path: Path) -> None:
    p = ca.pki(tmp_path)
    ca.create_ca(p, "prod")
    ca.issue_own(p, "web-1", ["10.0.0.5"])
    assert stat.S_IMODE(p.dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in (p.ca_key, p.key, p.cert))
    cert = x509.load_pem_x509_certificate(p.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"web-1", "localhost"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("127.0.0.1")}
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    authority = x509.load_pem_x509_certificate(p.ca_cert.read_bytes())
    cert.verify_directly_issued_by(authority)
    assert ca.common_name(p.cert.read_bytes()) == "web-1"
    assert [f.name for f in ca.pki_files(tmp_path)] == ["ca.crt", "ca.key", "machine.crt",
                                                        "machine.key"]


def test_the_signer_decides_the_names_not_the_request(tmp_path: Path) -> None:
    cert_pem, key_pem = ca.make_ca("prod")
    csr = ca.make_csr(ca.new_key(), "evil.example.com")
    cert = x509.load_pem_x509_certificate(ca.sign(cert_pem, key_pem, csr, "web-2", ["10.0.0.6"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "evil.example.com" not in san.get_values_for_type(x509.DNSName)


def test_garbage_is_not_signed() -> None:
    cert_pem, key_pem = ca.make_ca("prod")
    with pytest.raises(ValidationError, match="not a certificate request"):
        ca.sign(cert_pem, key_pem, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "x", [])


def test_a_second_ca_is_refused(tmp_path: Path) -> None:
    p = ca.pki(tmp_path)
    ca.create_ca(p, "prod")
    before = p.ca_cert.read_bytes()
    with pytest.raises(ValidationError, match="in a cluster"):
        ca.create_ca(p, "prod")
    assert p.ca_cert.read_bytes() == before


def test_fingerprints_tell_cas_apart() -> None:
    one, _ = ca.make_ca("prod")
    two, _ = ca.make_ca("prod")
    assert len(ca.fingerprint(one)) == 64
    assert ca.fingerprint(one) == ca.fingerprint(one) != ca.fingerprint(two)
