"""Domains belong to one app: the pure rules, and the checked writes of the PaaS records."""

import json

import pytest

from shipmate.errors import ConflictError, ValidationError
from shipmate.paas.domains import (
    check_new_app,
    check_new_domain,
    check_new_global,
    claims_from,
)
from shipmate.paas.state import PaasState
from shipmate.router import keys as route_keys
from shipmate.testing.store import memory_store

CLAIMS = claims_from({"app1", "app2", "api"}, {"api": ["api.example.com"]}, "apps.test")


@pytest.mark.parametrize(("domain", "owner"), [
    ("app2.apps.test", "app2"),  # another app's APP.GLOBALDOMAIN
    ("api.example.com", "api"),  # another app's custom domain
    ("API.Example.COM", "api"),  # in any case
])
def test_a_domain_of_another_app_is_refused_naming_the_owner(domain: str, owner: str) -> None:
    with pytest.raises(ConflictError, match=f"already belongs to app {owner}"):
        check_new_domain("app1", domain, CLAIMS)


@pytest.mark.parametrize("domain", ["localhost", "LOCALHOST", "x.localhost", "127.0.0.1",
                                    "10.1", "0", "192.168.1.300", "1.2.3.4"])
def test_the_machine_and_ip_literals_are_refused(domain: str) -> None:
    with pytest.raises(ValidationError, match=r"names this machine|IP address"):
        check_new_domain("app1", domain, CLAIMS)


def test_the_dashboard_name_is_reserved() -> None:
    with pytest.raises(ConflictError, match="reserved for the Shipmate dashboard"):
        check_new_domain("app1", "shipmate.apps.test", CLAIMS)
    with pytest.raises(ConflictError, match="reserved"):
        check_new_app("shipmate", CLAIMS)


def test_free_names_and_the_apps_own_names_are_accepted() -> None:
    assert check_new_domain("app1", "WWW.Example.com", CLAIMS) == "www.example.com"
    assert check_new_domain("app1", "app1.apps.test", CLAIMS) == "app1.apps.test"
    assert check_new_domain("api", "api.example.com", CLAIMS) == "api.example.com"
    # a name under the global domain nobody has yet, and the global domain itself
    assert check_new_domain("app1", "later.apps.test", CLAIMS) == "later.apps.test"
    assert check_new_domain("app1", "apps.test", CLAIMS) == "apps.test"
    # a 190-character name is valid: the router sizes its hashes for it
    long = ".".join(["a" * 62, "b" * 62, "c" * 61]) + ".io"
    assert len(long) == 190 and check_new_domain("app1", long, CLAIMS) == long


def test_wildcards_are_refused() -> None:
    with pytest.raises(ValidationError, match="wildcard"):
        check_new_domain("app1", "*.example.com", CLAIMS)


def test_an_app_whose_global_name_is_taken_cannot_be_created() -> None:
    claims = claims_from({"app1"}, {"app1": ["victim.apps.test"]}, "apps.test")
    with pytest.raises(ConflictError, match=r"victim\.apps\.test is a domain of app app1"):
        check_new_app("victim", claims)
    check_new_app("other", claims)
    check_new_app("victim", claims_from({"app1"}, {"app1": ["victim.apps.test"]}, ""))


def test_a_global_domain_that_would_hand_a_name_over_is_refused() -> None:
    claims = claims_from({"app1", "app2"}, {"app1": ["app2.new.test"]}, "")
    with pytest.raises(ConflictError, match=r"app2\.new\.test would belong to app app2"):
        check_new_global("new.test", claims)
    assert check_new_global("Other.Test", claims) == "other.test"
    with pytest.raises(ValidationError):
        check_new_global("localhost", claims)


async def test_domains_add_through_the_records() -> None:
    store = await memory_store()
    state = PaasState(store)
    await state.set_global_domain("apps.test")
    for app in ("app1", "app2"):
        await state.create_app(app)
    await state.allocate_port("app1")
    assert await state.change_domains("app1", ["www.one.test"], []) == ["www.one.test"]
    # the dedicated port survives a domains change
    assert (await state.domains("app1"))[1] == 10001
    with pytest.raises(ConflictError, match="belongs to app app1"):
        await state.change_domains("app2", ["www.one.test"], [])
    with pytest.raises(ConflictError, match="belongs to app app1"):
        await state.change_domains("app2", ["app1.apps.test"], [])
    with pytest.raises(ValidationError, match="IP address"):
        await state.change_domains("app2", ["127.0.0.1"], [])
    assert await state.domains("app2") == ([], None)  # nothing was written
    # the second comes last: an app whose APP.GLOBALDOMAIN is taken is not created
    await state.change_domains("app1", ["app3.apps.test"], [])
    with pytest.raises(ConflictError, match="is a domain of app app1"):
        await state.create_app("app3")
    assert not await state.exists("app3")
    assert await state.change_domains("app1", [], ["app3.apps.test"]) == ["www.one.test"]
    await state.create_app("app3")
    with pytest.raises(ConflictError, match="Name is already taken"):
        await state.create_app("app3")


async def test_set_global_through_the_records() -> None:
    store = await memory_store()
    state = PaasState(store)
    await state.create_app("app1")
    await state.create_app("app2")
    await state.change_domains("app1", ["app2.new.test"], [])
    with pytest.raises(ConflictError, match="would belong to app app2"):
        await state.set_global_domain("new.test")
    assert await state.global_domain() == ""
    assert await state.set_global_domain("New2.test") == "new2.test"
    kv = await store.get(route_keys.GLOBAL_DOMAIN_KEY)
    assert kv is not None and json.loads(kv.value) == {"domain": "new2.test"}
