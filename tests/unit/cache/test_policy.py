"""Cache policy: canonical paths, allowlists, classification, freshness."""

from __future__ import annotations

import pytest

from shipmate.cache.policy import (
    Action,
    Allowlist,
    Cached,
    Kind,
    Origin,
    Refused,
    base_url,
    canonical_path,
    classify,
    client_allowed,
    conditional_headers,
    decide,
    hash_from_path,
    parse_networks,
    parse_origin,
)


@pytest.mark.parametrize(("raw", "canon"), [
    ("/debian/pool/main/h/hello.deb", "/debian/pool/main/h/hello.deb"),
    ("/debian//pool///x.deb", "/debian/pool/x.deb"),
    ("/pypi/simple/six/", "/pypi/simple/six/"),
    ("/p/libstdc%2b%2b6_1_amd64.deb", "/p/libstdc++6_1_amd64.deb"),
    ("/p/a%20b", "/p/a%20b"),
    ("/p/x?a=1", "/p/x?a=1"),
    ("/p/%7euser", "/p/~user"),
])
def test_canonical_paths(raw: str, canon: str) -> None:
    assert canonical_path(raw) == canon


@pytest.mark.parametrize(("raw", "status"), [
    ("/a/../b", 403), ("/a/..", 403), ("/a/%2e%2e/b", 403), ("/a/%2E%2e/b", 403),
    ("/a/./b", 403), ("/a/%2e/b", 403),
    ("/a/%2fb", 400), ("/a/%2F..%2F", 400), ("/a/%5c..", 400), ("/a/x%00", 400),
    ("/a/%252e%252e/b", 400), ("/a\\..\\b", 400), ("/a/\x00", 400), ("/a b", 400),
    ("a/b", 400), ("/a#frag", 400), ("/a/%ff%fe", 400), ("/a/%0a", 400),
])
def test_refused_paths(raw: str, status: int) -> None:
    with pytest.raises(Refused) as info:
        canonical_path(raw)
    assert info.value.status == status


def test_allowlist_hosts_and_explicit_ports() -> None:
    allow = Allowlist.parse("deb.debian.org, Pypi.org ,127.0.0.1:8080")
    assert allow.allows(Origin("http", "deb.debian.org", 80))
    assert allow.allows(Origin("https", "pypi.org", 443))
    assert not allow.allows(Origin("http", "deb.debian.org", 8080))
    assert not allow.allows(Origin("http", "evil.example", 80))
    assert allow.allows(Origin("http", "127.0.0.1", 8080))
    assert not allow.allows(Origin("http", "127.0.0.1", 80))  # a port entry opens that port only
    assert allow.allows_connect("pypi.org", 443)
    assert not allow.allows_connect("pypi.org", 80)
    assert not allow.allows_connect("127.0.0.1", 443)


def test_parse_origin() -> None:
    origin, path = parse_origin("HTTP://Deb.Debian.Org./debian/x%2by.deb")
    assert origin == Origin("http", "deb.debian.org", 80) and path == "/debian/x+y.deb"
    assert parse_origin("https://h:8443")[0].url("/a") == "https://h:8443/a"
    for bad in ("ftp://h/x", "http://u:p@h/x", "http://h:99999/x", "http:///x"):
        with pytest.raises(Refused):
            parse_origin(bad)


def test_client_allowlist() -> None:
    nets = parse_networks("127.0.0.0/8,172.16.0.0/12,::1/128")
    assert client_allowed("127.0.0.1", nets)
    assert client_allowed("172.17.0.2", nets)
    assert client_allowed("::ffff:127.0.0.1", nets)
    assert client_allowed("::1", nets)
    assert not client_allowed("8.8.8.8", nets)
    assert not client_allowed(None, nets)
    assert not client_allowed("garbage", nets)


@pytest.mark.parametrize(("path", "kind"), [
    ("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", Kind.IMMUTABLE),
    ("/debian/dists/bookworm/InRelease", Kind.VOLATILE),
    ("/debian/dists/bookworm/main/binary-amd64/Packages.xz", Kind.VOLATILE),
    ("/debian/dists/bookworm/main/i18n/Translation-en.bz2", Kind.VOLATILE),
    ("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abcd", Kind.IMMUTABLE),
    ("/debian/pool/main/h/hello/hello_2.10.orig.tar.gz", Kind.IMMUTABLE),
    ("/debian/pool/main/h/hello/hello_2.10.orig.tar.gz.asc", Kind.IMMUTABLE),
    ("/debian/pool/main/h/hello/README.asc", Kind.VOLATILE),
    ("/packages/aa/bb/six-1.16.0-py2.py3-none-any.whl", Kind.IMMUTABLE),
    ("/left-pad/-/left-pad-1.3.0.tgz", Kind.IMMUTABLE),
    ("/some/unknown/file", Kind.VOLATILE),
])
def test_classify(path: str, kind: Kind) -> None:
    assert classify(path) is kind


def test_hash_from_path() -> None:
    assert hash_from_path("/d/by-hash/SHA256/ABCDEF") == ("sha256", "abcdef")
    assert hash_from_path("/d/by-hash/MD5Sum/00ff") == ("md5", "00ff")
    assert hash_from_path("/d/pool/x.deb") is None


def test_decide() -> None:
    assert decide(None, 100.0, 300) is Action.FETCH
    assert decide(Cached(Kind.IMMUTABLE, 0.0), 1e9, 300) is Action.HIT
    assert decide(Cached(Kind.VOLATILE, 100.0), 399.0, 300) is Action.HIT
    assert decide(Cached(Kind.VOLATILE, 100.0), 400.0, 300) is Action.REVALIDATE
    assert decide(Cached(Kind.VOLATILE, 500.0), 400.0, 300) is Action.REVALIDATE  # clock jumped


def test_conditional_headers_and_base_url() -> None:
    assert conditional_headers('"e"', "Sat") == {"If-None-Match": '"e"', "If-Modified-Since": "Sat"}
    assert conditional_headers(None, None) == {}
    assert base_url("172.17.0.1:3142", "x") == "http://172.17.0.1:3142"
    assert base_url("[::1]:3142", "x") == "http://[::1]:3142"
    assert base_url('a"><script>', "127.0.0.1:3142") == "http://127.0.0.1:3142"
    assert base_url(None, "127.0.0.1:3142") == "http://127.0.0.1:3142"
