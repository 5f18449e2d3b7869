"""``urls APP`` and the deploy output: ``https://`` for the names an app's certificate
covers, as Dokku prints once an app has one."""

import datetime as dt
from pathlib import Path

from shipmate import config
from shipmate.paas.certs import Certs
from shipmate.paas.service import Paas
from shipmate.paas.urls import app_urls
from shipmate.testing.store import memory_store


def test_without_a_certificate_every_url_is_plain_http() -> None:
    assert app_urls(["web.apps.test", "www.example.com"], None) == \
        ["http://web.apps.test", "http://www.example.com"]
    assert app_urls(["web.apps.test"], None, http_port=8080) == ["http://web.apps.test:8080"]


def test_names_the_certificate_covers_are_https_the_others_stay_http() -> None:
    urls = app_urls(["web.apps.test", "www.example.com", "api.example.com"], None,
                    cert_names=["*.apps.test", "www.example.com"], https_port=443)
    assert urls == ["https://web.apps.test", "https://www.example.com",
                    "http://api.example.com"]


def test_the_https_port_shows_unless_it_is_443_and_zero_turns_https_off() -> None:
    assert app_urls(["web.apps.test"], None, cert_names=["web.apps.test"], http_port=8080,
                    https_port=8443) == ["https://web.apps.test:8443"]
    assert app_urls(["web.apps.test"], None, cert_names=["web.apps.test"],
                    https_port=0) == ["http://web.apps.test"]


def test_a_wildcard_covers_one_label_only() -> None:
    assert app_urls(["a.b.apps.test"], None, cert_names=["*.apps.test"], https_port=443) == \
        ["http://a.b.apps.test"]


def test_the_apps_own_port_stays_plain_http() -> None:
    assert app_urls([], 5001, cert_names=["web.apps.test"], https_port=443,
                    public_ip="10.0.0.5") == ["http://10.0.0.5:5001"]


async def test_paas_urls_follow_the_certificate(tmp_path: Path) -> None:
    store = await memory_store()
    paas = Paas(store, None, config.load({}, state_dir=tmp_path, https_port=8443))
    await paas.state.set_global_domain("apps.test")
    await paas.state.create_app("web")
    await paas.state.set_domains("web", ["www.example.com"], None)
    assert await paas.urls("web") == ["http://web.apps.test", "http://www.example.com"]

    certs = Certs(store, paas.state, wall=lambda: dt.datetime.now(dt.UTC))
    await certs.generate("web", ["web.apps.test"])
    assert await paas.urls("web") == ["https://web.apps.test:8443", "http://www.example.com"]
    assert (await paas.domains_report("web"))["urls"][0] == "https://web.apps.test:8443"

    await certs.remove("web")
    assert await paas.urls("web") == ["http://web.apps.test", "http://www.example.com"]
