"""HTTPS in the router's routes and rendered config (pure: store pairs in, text out)."""

from __future__ import annotations

import datetime as dt
import re

from shipmate.router import keys, tlskeys
from shipmate.router.render import render
from shipmate.router.routes import state_from_kvs
from shipmate.router.tls import generate_self_signed

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
TOKEN = "tok_" + "A" * 40
KEYAUTH = f"{TOKEN}.{'b' * 43}"


def _cert(*names: str) -> tuple[str, str]:
    crt, key = generate_self_signed(list(names), now=NOW)
    return crt.decode(), key.decode()


def _pairs(cert: tuple[str, str] | None = None, names: tuple[str, ...] = ("a.test",),
           hsts: bool = False, port: int | None = None) -> list[tuple[str, bytes]]:
    out = [(keys.domains_key("web"), keys.encode_domains(["a.test", "b.test"], port).encode()),
           (keys.active_key("web"), keys.encode_active("v1").encode()),
           (keys.endpoint_key("web", "web", "1"),
            keys.encode_endpoint("127.0.0.1", 5000, release="v1").encode())]
    if cert is not None:
        out.append((tlskeys.cert_key("web"),
                    tlskeys.encode_cert(*cert, names, "", "manual").encode()))
    if hsts:
        out.append((tlskeys.options_key("web"), tlskeys.encode_options(True).encode()))
    return out


def _blocks(text: str) -> list[str]:
    return re.findall(r"\n    server \{\n.*?\n    \}\n", text, re.S)


def test_no_certificate_renders_no_tls_at_all() -> None:
    text = render(state_from_kvs(_pairs(), http_port=80, https_port=443))
    assert text == render(state_from_kvs(_pairs(), http_port=80, https_port=0))
    assert "ssl" not in text and "443" not in text


def test_covered_domains_get_https_and_a_redirect_uncovered_stay_plain() -> None:
    cert = _cert("a.test")
    state = state_from_kvs(_pairs(cert), http_port=8080, https_port=8443)
    text = render(state)
    https = next(b for b in _blocks(text) if "listen 8443 ssl http2;" in b)
    assert "server_name a.test;" in https and "proxy_pass http://shipmate_app_web;" in https
    file = state.routes[0].tls.file  # type: ignore[union-attr]
    assert re.fullmatch(r"web-[0-9a-f]{16}\.pem", file)
    assert f"ssl_certificate tls/{file};" in https and "Strict-Transport" not in https
    redirect = next(b for b in _blocks(text) if "return 301" in b)
    assert "server_name a.test;" in redirect
    assert "return 301 https://$host:8443$request_uri;" in redirect
    assert "location ^~ /.well-known/acme-challenge/ {\n            proxy_pass" in redirect
    plain = next(b for b in _blocks(text) if "server_name b.test;" in b)
    assert "listen 8080;" in plain and "proxy_pass" in plain and "301" not in plain
    # unknown names over TLS: no handshake; Mozilla intermediate; no stapling
    assert "listen 8443 ssl http2 default_server;\n        server_name _;\n" \
           "        ssl_reject_handshake on;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text and "ssl_stapling off;" in text
    assert "ssl_prefer_server_ciphers off;" in text and "ssl_session_tickets off;" in text
    assert state.tls_files == {file: cert[0].rstrip("\n") + "\n" + cert[1]}


def test_on_443_the_redirect_has_no_port_and_hsts_is_added_when_set() -> None:
    text = render(state_from_kvs(_pairs(_cert("a.test"), hsts=True), https_port=443))
    assert "return 301 https://$host$request_uri;" in text
    assert 'add_header Strict-Transport-Security "max-age=15724800; includeSubdomains" ' \
           'always;' in text


def test_a_new_certificate_is_a_new_file_and_the_same_one_the_same_bytes() -> None:
    one, two = _cert("a.test"), _cert("a.test")
    first = render(state_from_kvs(_pairs(one), https_port=443))
    assert first == render(state_from_kvs(_pairs(one), https_port=443))
    assert first != render(state_from_kvs(_pairs(two), https_port=443))


def test_a_certificate_for_none_of_the_domains_is_not_served() -> None:
    state = state_from_kvs(_pairs(_cert("other.test"), names=("other.test",)), https_port=443)
    assert state.routes[0].tls is None and "ssl" not in render(state)
    assert any("covers none of its domains" in p for p in state.problems)


def test_a_wildcard_certificate_covers_one_label() -> None:
    state = state_from_kvs(_pairs(_cert("*.test"), names=("*.test",)), https_port=443)
    assert state.routes[0].tls is not None
    assert state.routes[0].tls.domains == ("a.test", "b.test")


def test_challenges_are_answered_by_every_http_server() -> None:
    pairs = [*_pairs(_cert("a.test")),
             (tlskeys.challenge_key(TOKEN),
              tlskeys.encode_challenge(TOKEN, KEYAUTH, "a.test").encode())]
    text = render(state_from_kvs(pairs, http_port=80, https_port=443))
    answer = (f"location = /.well-known/acme-challenge/{TOKEN} {{\n"
              "            default_type text/plain;\n"
              f"            return 200 '{KEYAUTH}';")
    http_blocks = [b for b in _blocks(text) if "listen 80" in b]
    assert len(http_blocks) == 3 and all(answer in b for b in http_blocks)
    assert all(answer not in b for b in _blocks(text) if "ssl" in b)


def test_bad_records_are_skipped_and_never_echo_the_key() -> None:
    pairs = [*_pairs(),
             (tlskeys.cert_key("web"), b'{"crt": "x", "key": "SECRET"}'),
             (tlskeys.challenge_key(TOKEN), b'{"keyauth": "x\'; evil"}'),
             (tlskeys.options_key("web"), b"[]")]
    state = state_from_kvs(pairs, https_port=443)
    assert state.routes[0].tls is None and state.challenges == ()
    assert len(state.problems) == 3 and "SECRET" not in repr(state)
    assert "evil" not in render(state)


def test_the_key_is_not_in_a_repr() -> None:
    cert = _cert("a.test")
    state = state_from_kvs(_pairs(cert), https_port=443)
    assert "PRIVATE KEY" not in repr(state)
    record = tlskeys.decode_tls(_pairs(cert)).certs["web"]
    assert "PRIVATE KEY" not in repr(record)


def test_an_app_port_equal_to_the_https_port_is_refused() -> None:
    state = state_from_kvs(_pairs(port=8443), http_port=8080, https_port=8443)
    assert state.routes[0].port is None
    assert any("HTTP or HTTPS port" in p for p in state.problems)
