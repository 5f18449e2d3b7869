"""Dashboard users: scrypt hashes, records in the store, the /v1/users routes and their audit
entries (never the password)."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.httpapi.client import DaemonClient
from shipmate.httpapi.server import errors_middleware
from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from shipmate.web import users as users_mod
from shipmate.web.audit import describe
from shipmate.web.audit_http import audit_middleware
from shipmate.web.eventlog import EventLog
from shipmate.web.users import Users, hash_password, verify_password
from shipmate.web.users_api import add_users_routes

PASSWORD = "correct horse battery"


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password(PASSWORD, log2_n=10)
    kind, log2_n, r, p, salt, digest = encoded.split("$")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert (kind, log2_n, r, p) == ("scrypt", "10", "8", "1")
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "x", encoded)
    assert hash_password(PASSWORD, log2_n=10) != encoded  # a fresh salt each time


def test_the_default_cost_is_memory_hard() -> None:
    assert users_mod.LOG2_N >= 15 and users_mod.R >= 8  # 32 MiB per check
    encoded = hash_password("x" * 12)
    assert encoded.startswith("scrypt$15$8$1$") and verify_password("x" * 12, encoded)


@pytest.mark.parametrize("broken", ["", "scrypt$10$8$1$!!$!!", "bcrypt$10$8$1$AA==$AA==",
                                    "scrypt$40$8$1$AA==$AA==", "scrypt$10$8$2$AA==$AA=="])
def test_an_unreadable_or_absurd_hash_never_verifies(broken: str) -> None:
    assert not verify_password(PASSWORD, broken)


async def test_users_in_the_store(store: Store) -> None:
    users = Users(store, log2_n=10)
    assert await users.add("alice", PASSWORD, admin=True) == {
        "name": "alice", "admin": True, "added": pytest.approx(0, abs=1e12)}
    await users.add("bob", PASSWORD)
    raw = json.loads((await store.get("/shipmate/users/alice")).value)
    assert PASSWORD not in json.dumps(raw) and raw["hash"].startswith("scrypt$")
    assert [(u["name"], u["admin"]) for u in await users.list()] == [("alice", True),
                                                                      ("bob", False)]
    assert (await users.check("alice", PASSWORD))["admin"] is True
    assert await users.check("alice", "wrong password") is None
    assert await users.check("nobody", PASSWORD) is None
    with pytest.raises(ConflictError):
        await users.add("alice", PASSWORD)
    await users.remove("bob")
    assert await users.check("bob", PASSWORD) is None
    with pytest.raises(NotFoundError):
        await users.remove("bob")


@pytest.mark.parametrize(("name", "password"), [("../x", PASSWORD), ("a b", PASSWORD),
                                                ("", PASSWORD), ("alice", "short")])
async def test_bad_names_and_short_passwords_are_refused(store: Store, name: str,
                                                         password: str) -> None:
    with pytest.raises(ValidationError):
        await Users(store, log2_n=10).add(name, password)
    assert (await store.range("/shipmate/users/"))[0] == []


def test_the_audit_trail_names_the_user_never_the_password() -> None:
    told = describe("POST", "/v1/users", {}, {}, {"name": "alice", "password": PASSWORD,
                                                 "admin": True})
    assert told is not None and (told.verb, told.summary) == ("users:add", "alice (admin)")
    told = describe("DELETE", "/v1/users/{name}", {"name": "alice"}, {}, {})
    assert told is not None and (told.verb, told.summary) == ("users:remove", "alice")


async def test_the_users_routes(store: Store) -> None:
    events = EventLog(store)
    app = web.Application(middlewares=[errors_middleware, audit_middleware(events)])
    add_users_routes(app, Users(store, log2_n=10))
    runner = web.AppRunner(app)
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "api.sock")
        await web.UnixSite(runner, sock).start()
        client = DaemonClient(sock)
        try:
            added = await client.request("POST", "/v1/users", json_body={
                "name": "carol", "password": PASSWORD, "admin": False})
            assert added["name"] == "carol" and "hash" not in added
            assert [u["name"] for u in await client.request("GET", "/v1/users")] == ["carol"]
            with pytest.raises(ValidationError):
                await client.request("POST", "/v1/users", json_body={"name": "d",
                                                                     "password": 5})
            await client.request("DELETE", "/v1/users/carol")
            assert await client.request("GET", "/v1/users") == []
        finally:
            await runner.cleanup()
    trail = [(e.verb, e.summary) for e in (await events.recent(10))[0]]
    assert trail[0] == ("users:add", "carol") and ("users:remove", "carol") in trail
    assert all(PASSWORD not in e.encode().decode() for e in (await events.recent(10))[0])
