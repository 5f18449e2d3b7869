"""Certificate checks before anything is stored (router/tls.py)."""

from __future__ import annotations

import datetime as dt
import io
import tarfile

import pytest

from shipmate.errors import ValidationError
from shipmate.router import tls

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _pair(*domains: str, now: dt.datetime = NOW, days: int = 90) -> tuple[bytes, bytes]:
    return tls.generate_self_signed(list(domains), now=now, days=days)


def test_a_matching_current_pair_is_accepted_and_described() -> None:
    crt, key = _pair("app.example.com", "www.example.com")
    pair = tls.check_pair(crt, key, domains=["www.example.com"], now=NOW)
    assert pair.info.sans == ("app.example.com", "www.example.com")
    assert pair.info.self_signed
    assert pair.info.not_after == NOW + dt.timedelta(days=90)
    assert pair.crt_pem.startswith("-----BEGIN CERTIFICATE-----")


def test_a_key_of_another_certificate_is_refused() -> None:
    crt, _ = _pair("app.example.com")
    _, other_key = _pair("app.example.com")
    with pytest.raises(ValidationError, match="does not match"):
        tls.check_pair(crt, other_key, domains=["app.example.com"], now=NOW)


def test_an_expired_certificate_is_refused() -> None:
    crt, key = _pair("app.example.com", now=NOW - dt.timedelta(days=100), days=90)
    with pytest.raises(ValidationError, match="expired on"):
        tls.check_pair(crt, key, domains=["app.example.com"], now=NOW)


@pytest.mark.parametrize("crt, key", [
    (b"garbage", b"garbage"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b""),
])
def test_garbage_is_refused(crt: bytes, key: bytes) -> None:
    with pytest.raises(ValidationError, match="not a PEM certificate"):
        tls.check_pair(crt, key, domains=["a.example.com"], now=NOW)


def test_garbage_key_is_refused_without_echoing_it() -> None:
    crt, _ = _pair("app.example.com")
    with pytest.raises(ValidationError) as err:
        tls.check_pair(crt, b"secret-material", domains=["app.example.com"], now=NOW)
    assert "secret-material" not in str(err.value)


def test_a_certificate_for_none_of_the_apps_domains_is_refused() -> None:
    crt, key = _pair("other.example.com")
    with pytest.raises(ValidationError, match="none of the app's domains"):
        tls.check_pair(crt, key, domains=["app.example.com"], now=NOW)


@pytest.mark.parametrize("name, domain, ok", [
    ("*.example.com", "app.example.com", True),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False),
    ("App.Example.com", "app.example.com", True),
])
def test_wildcards_cover_one_label(name: str, domain: str, ok: bool) -> None:
    assert tls.covers(name, domain) is ok


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_dokku_tar_gives_the_crt_and_key() -> None:
    crt, key = _pair("app.example.com")
    assert tls.read_tar(_tar({"server.crt": crt, "./x/server.key": key})) == (crt, key)


def test_a_tar_without_the_key_or_not_a_tar_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"no server\.key"):
        tls.read_tar(_tar({"server.crt": b"x"}))
    with pytest.raises(ValidationError, match="not a tar"):
        tls.read_tar(b"plain text")


def test_renewal_starts_thirty_days_before_expiry() -> None:
    end = NOW + dt.timedelta(days=30)
    assert tls.renewal_due(end, NOW)
    assert not tls.renewal_due(end + dt.timedelta(seconds=1), NOW)
