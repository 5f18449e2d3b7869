"""Router store keys: validation, encoding and decoding."""

from __future__ import annotations

import json

import pytest

from shipmate.errors import ValidationError
from shipmate.router import keys
from shipmate.router.keys import (
    AppDomains,
    EndpointRecord,
    decode,
    validate_domain,
    validate_host,
    validate_port,
)

BAD_DOMAINS = [
    "", ".", "a..b", ".a.com", "a.com.", "-a.com", "a-.com", "a_b.com", "a b.com", "a\nb.com",
    "a;b", "a.com;", "a{b", "a}b", "a.com\r\n", "$host", "a'b", 'a"b', "a/b", "a\\b", "*.a.com",
    "a.com:80", "x" * 64 + ".com", ("a" * 60 + ".") * 5, "é.com", "a\tb", "a\x00b",
    "a.com; include /etc/passwd", "a.com { }",
]


@pytest.mark.parametrize("name", BAD_DOMAINS)
def test_bad_domains_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_domain(name)


@pytest.mark.parametrize(
    ("name", "normal"),
    [("example.com", "example.com"), ("App.Example.COM", "app.example.com"),
     ("localhost", "localhost"), ("xn--bcher-kva.example", "xn--bcher-kva.example"),
     ("a-b.c0.d", "a-b.c0.d"), ("x" * 63 + ".io", "x" * 63 + ".io")],
)
def test_good_domains_are_normalised(name: str, normal: str) -> None:
    assert validate_domain(name) == normal


def test_wildcards_are_refused_with_their_own_reason() -> None:
    # One rule for the API and the router (issue 17): a wildcard is refused at domains:add.
    with pytest.raises(ValidationError, match="wildcard domains are not supported"):
        validate_domain("*.example.com")


@pytest.mark.parametrize("port", [0, -1, 65536, True, "80", 80.0, None])
def test_bad_ports(port: object) -> None:
    with pytest.raises(ValidationError):
        validate_port(port)


@pytest.mark.parametrize("host", ["localhost", "example.com", "1.2.3.4;", "1.2.3", "", 5, None,
                                  "127.0.0.1 ", "::1]"])
def test_endpoint_hosts_must_be_ip_literals(host: object) -> None:
    with pytest.raises(ValidationError):
        validate_host(host)


def test_ipv6_is_normalised() -> None:
    assert validate_host("0:0::1") == "::1"


def test_key_builders_validate_names() -> None:
    assert keys.domains_key("web") == "/shipmate/routes/domains/web"
    assert keys.active_key("web") == "/shipmate/routes/active/web"
    assert keys.endpoint_key("web", "web", "1") == "/shipmate/endpoints/web/web/1"
    for bad in [("Web", "web", "1"), ("a/b", "web", "1"), ("web", "w/eb", "1"),
                ("web", "web", "../1"), ("web", "web", "")]:
        with pytest.raises(ValidationError):
            keys.endpoint_key(*bad)


def test_encode_then_decode_round_trips() -> None:
    pairs = [
        (keys.GLOBAL_DOMAIN_KEY, keys.encode_global_domain("Apps.Test").encode()),
        (keys.domains_key("web"), keys.encode_domains(["b.test", "A.test", "b.test"], 10001)
         .encode()),
        (keys.active_key("web"), keys.encode_active("v3").encode()),
        (keys.endpoint_key("web", "web", "1"),
         keys.encode_endpoint("127.0.0.1", 5000, release="v3", machine="m1").encode()),
    ]
    got = decode(pairs)
    assert got.problems == ()
    assert got.global_domain == "apps.test"
    assert got.apps == {"web": AppDomains(("a.test", "b.test"), 10001)}
    assert got.active == {"web": "v3"}
    assert got.endpoints == (EndpointRecord("web", "web", "1", "127.0.0.1", 5000, "m1", "v3"),)


def _kv(key: str, value: object) -> tuple[str, bytes]:
    return key, json.dumps(value).encode()


def test_decode_skips_bad_records_and_says_why() -> None:
    got = decode([
        ("/shipmate/routes/domains/web", b"{not json"),
        _kv("/shipmate/routes/domains/Bad", {"domains": []}),
        _kv("/shipmate/routes/domains/ok", {"domains": ["good.test", "bad;x", 7], "port": 9000}),
        _kv("/shipmate/routes/domains/portless", {"domains": [], "port": "80"}),
        _kv("/shipmate/routes/active/ok", {"release": ""}),
        _kv("/shipmate/routes/global-domain", {"domain": "x y"}),
        _kv("/shipmate/endpoints/ok/web", {"host": "127.0.0.1", "port": 1}),
        _kv("/shipmate/endpoints/ok/web/1", {"host": "127.0.0.1", "port": 0}),
        _kv("/shipmate/endpoints/ok/web/2", {"host": "127.0.0.1;", "port": 1}),
        _kv("/shipmate/endpoints/ok/web/3", ["not", "an", "object"]),
        _kv("/shipmate/endpoints/ok/web/4", {"host": "127.0.0.1", "port": 5000}),
        _kv("/shipmate/routes/something-new", {"x": 1}),
    ])
    assert got.apps == {"ok": AppDomains(("good.test",), 9000)}
    assert [e.instance for e in got.endpoints] == ["4"]
    assert got.global_domain == ""
    assert len(got.problems) == 11
    assert any("bad;x" in p for p in got.problems)
    assert any(p.startswith("/shipmate/routes/domains/web:") for p in got.problems)


def test_endpoint_defaults() -> None:
    got = decode([_kv("/shipmate/endpoints/a/web/1", {"host": "10.0.0.1", "port": 80})])
    assert got.endpoints[0].healthy is True
    assert got.endpoints[0].release == ""
    got = decode([_kv("/shipmate/endpoints/a/web/1",
                      {"host": "10.0.0.1", "port": 80, "healthy": False})])
    assert got.endpoints[0].healthy is False
