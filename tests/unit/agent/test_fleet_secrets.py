"""Environment values of units (secrets of ``apply --via-daemon`` and of PaaS config) are not
readable through ``fleet cat`` or ``fleet status``; the agent still runs the real ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shipmate.agent import api as fleet_api
from shipmate.agent.publish import journal_key
from shipmate.converge.units import render_unit
from shipmate.scheduler.registry import Registry
from shipmate.spec.container import make_spec
from shipmate.spec.unitredact import REDACTED, environment_values, redact_environment, scrub
from shipmate.spec.units import container_spec, parse_unit
from shipmate.store.base import Store
from shipmate.testing.store import memory_store

SECRETS = {"DB_PASSWORD": "s3cr3t-p4ss word", "API_KEY": "key-0123456789",
           "MOTD": "line one\nline two", "EMPTY": "", "DEBUG": "1"}
UNIT = "manifest-shop-db.container"


def unit_text() -> str:
    """A unit as ``apply --via-daemon`` submits it: the whole environment in [Container]."""
    spec = make_spec("shop-db", "shipmate/base:bookworm", command=["sleep", "300"],
                     env=SECRETS)
    return render_unit(spec)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    yield s
    await s.close()


async def call(store: Store, handler: Any, query: str) -> dict[str, Any]:
    app = web.Application()
    fleet_api.add_fleet_routes(app, store)
    response = await handler(make_mocked_request("GET", f"/?{query}", app=app))
    return dict(json.loads(response.body))


def test_redacted_text_keeps_the_names_and_hides_every_value() -> None:
    text = unit_text()
    shown = redact_environment(text)
    for value in ("s3cr3t", "key-0123456789", "line one"):
        assert value in text.replace("\\n", "\n") and value not in shown
    unit = parse_unit(UNIT, shown)  # still a valid unit, with the names
    env = container_spec(unit.file, UNIT, hostname="h", machine_id="m").env_dict
    assert env["DB_PASSWORD"] == env["API_KEY"] == env["MOTD"] == env["DEBUG"] == REDACTED
    assert env["EMPTY"] == ""
    # The agent runs the real values: the stored text is untouched.
    assert container_spec(parse_unit(UNIT, text).file, UNIT, hostname="h",
                          machine_id="m").env_dict == SECRETS


def test_a_unit_without_environment_is_shown_as_submitted() -> None:
    text = "# my web\n[Service]\nExecStart=/bin/sleep 100\n"
    assert redact_environment(text) == text
    service = "[Service]\nEnvironment=\"TOKEN=abc def\" PLAIN=1\nExecStart=/bin/x\n"
    shown = redact_environment(service)
    assert "abc def" not in shown and f"TOKEN={REDACTED}" in shown
    assert environment_values(parse_unit("x.service", service).file) == ["abc def", "1"]


def test_scrub_cuts_the_values_out_of_messages_but_not_short_words() -> None:
    message = "create failed: env DB_PASSWORD=s3cr3t-p4ss word is invalid; DEBUG=1"
    assert scrub(message, ["s3cr3t-p4ss word", "1"]) == (
        f"create failed: env DB_PASSWORD={REDACTED} is invalid; DEBUG=1")


async def test_fleet_cat_shows_names_not_values(store: Store) -> None:
    text = unit_text()
    await Registry(store).submit(UNIT, text)
    data = await call(store, fleet_api.cat, f"unit={UNIT}")
    assert "s3cr3t" not in data["text"] and "key-0123456789" not in data["text"]
    assert f"DB_PASSWORD={REDACTED}" in data["text"]
    assert data["hash"] == parse_unit(UNIT, text).hash  # the real unit's hash


async def test_fleet_status_scrubs_what_the_engine_said(store: Store) -> None:
    await Registry(store).submit(UNIT, unit_text())
    detail = {"active": "failed", "sub": "failed",
              "result": "health check failed: API_KEY=key-0123456789 refused",
              "error": "Docker engine: invalid env s3cr3t-p4ss word"}
    await store.put(journal_key(UNIT, "m1"), json.dumps(
        {"detail": detail, "lines": ["app says hello"]}))
    data = await call(store, fleet_api.status, f"unit={UNIT}")
    shown = json.dumps(data)
    assert "s3cr3t" not in shown and "key-0123456789" not in shown
    (block,) = data["machines"]
    assert block["detail"]["result"] == f"health check failed: API_KEY={REDACTED} refused"
    assert block["detail"]["active"] == "failed" and block["lines"] == ["app says hello"]
