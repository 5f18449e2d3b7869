"""Routing request targets to upstream URLs and cache keys."""

from __future__ import annotations

import pytest

from shipmate.cache.policy import Allowlist, Kind, Refused
from shipmate.cache.routes import PYPI_JSON, Rewrite, Routes, route

DEFAULT = ("deb.debian.org,security.debian.org,pypi.org,files.pythonhosted.org,"
           "registry.npmjs.org")
ROUTES = Routes.build(Allowlist.parse(DEFAULT), "https://pypi.org", "https://registry.npmjs.org")


def test_proxy_and_prefix_forms_share_a_key() -> None:
    a = route("http://deb.debian.org/debian/pool/main/h/hello.deb", "", ROUTES)
    b = route("/deb.debian.org/debian/pool/main/h/hello.deb", "", ROUTES)
    c = route("/debian/pool/main/h/hello.deb", "", ROUTES)  # apt-cacher-ng backend alias
    assert a.key == b.key == c.key == "http://deb.debian.org/debian/pool/main/h/hello.deb"
    assert a.fmt == "apt" and a.kind is Kind.IMMUTABLE


def test_pypi_routes() -> None:
    page = route("/pypi/simple/Six", "text/html", ROUTES)
    assert page.url == "https://pypi.org/simple/Six/" and page.rewrite is Rewrite.PYPI_HTML
    assert page.kind is Kind.VOLATILE and page.fmt == "pypi"
    pip_accept = f"{PYPI_JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    js = route("/pypi/simple/six/", pip_accept, ROUTES)
    assert js.rewrite is Rewrite.PYPI_JSON and js.key != page.key
    f = route("/pypi/files/https/files.pythonhosted.org/packages/aa/six.whl", "", ROUTES)
    assert f.url == "https://files.pythonhosted.org/packages/aa/six.whl"
    assert f.kind is Kind.IMMUTABLE and f.fmt == "pypi"


def test_npm_routes() -> None:
    meta = route("/npm/left-pad", "application/json", ROUTES)
    assert meta.url == "https://registry.npmjs.org/left-pad" and meta.rewrite is Rewrite.NPM
    corgi = route("/npm/left-pad", "application/vnd.npm.install-v1+json; q=1.0", ROUTES)
    assert corgi.key != meta.key and corgi.accept == "application/vnd.npm.install-v1+json"
    scoped = route("/npm/@types%2fnode", "", ROUTES)
    assert scoped.url == "https://registry.npmjs.org/@types%2Fnode"
    tgz = route("/npm/_files/https/registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz", "", ROUTES)
    assert tgz.url.endswith("/left-pad/-/left-pad-1.3.0.tgz") and tgz.kind is Kind.IMMUTABLE
    direct = route("/npm/left-pad/-/left-pad-1.3.0.tgz", "", ROUTES)
    assert direct.url == tgz.url


def test_upstream_prefix_for_mirrors() -> None:
    routes = Routes.build(Allowlist.parse("127.0.0.1:9000"), "http://127.0.0.1:9000/pypi-up",
                          "http://127.0.0.1:9000/npm-up/")
    assert route("/pypi/simple/x/", "", routes).url == "http://127.0.0.1:9000/pypi-up/simple/x/"
    assert route("/npm/x", "", routes).url == "http://127.0.0.1:9000/npm-up/x"
    assert route("/npm/x", "", routes).fmt == "npm"
    assert route("http://127.0.0.1:9000/other/x.deb", "", routes).fmt == "apt"


@pytest.mark.parametrize(("raw", "status"), [
    ("http://example.com/x", 403), ("/example.com/x", 403), ("/npm/_files/https/evil.com/x", 403),
    ("/pypi/files/https/evil.com/x.whl", 403), ("/pypi/other", 404), ("/nothing", 404),
    ("/npm/@scope%2f..%2fx", 400), ("https://deb.debian.org:444/x", 403),
])
def test_refusals(raw: str, status: int) -> None:
    with pytest.raises(Refused) as info:
        route(raw, "", ROUTES)
    assert info.value.status == status
