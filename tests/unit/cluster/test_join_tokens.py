"""Join tokens: pinned to the CA, used once, dead after their time, never stored in clear."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shipmate.cluster import join_tokens
from shipmate.errors import ValidationError
from shipmate.store.base import Store
from shipmate.testing import FakeClock, memory_store

FP = "ab" * 32


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store(FakeClock())
    yield s
    await s.close()


async def test_a_token_is_used_once(store: Store) -> None:
    out = await join_tokens.create(store, FP, 600)
    token = out["token"]
    assert join_tokens.parse(token)[1] == FP  # the joiner pins the CA with it
    assert await join_tokens.valid(store, token)
    assert await join_tokens.consume(store, token)
    assert not await join_tokens.valid(store, token)
    assert not await join_tokens.consume(store, token)


async def test_only_a_hash_is_stored(store: Store) -> None:
    token = (await join_tokens.create(store, FP, 600))["token"]
    kvs, _ = await store.range(join_tokens.PREFIX)
    secret = token.split(".")[1]
    assert len(kvs) == 1 and secret not in kvs[0].key and secret.encode() not in kvs[0].value
    assert kvs[0].lease  # the store drops it when its time is up


async def test_wrong_and_expired_tokens_are_refused(store: Store) -> None:
    token = (await join_tokens.create(store, FP, 600))["token"]
    wrong = token.replace(token.split(".")[1], "0" * 32)
    assert not await join_tokens.consume(store, wrong)
    assert not await join_tokens.consume(store, "nonsense")
    kv = (await store.range(join_tokens.PREFIX))[0][0]
    await store.put(kv.key, json.dumps({"expires": 1.0}))  # long past
    assert not await join_tokens.consume(store, token)


@pytest.mark.parametrize("ttl", [10, 10**6])
async def test_lifetimes_are_bounded(store: Store, ttl: float) -> None:
    with pytest.raises(ValidationError, match="a join token lives"):
        await join_tokens.create(store, FP, ttl)


def test_malformed_tokens_say_what_a_token_looks_like() -> None:
    with pytest.raises(ValidationError, match="smj1"):
        join_tokens.parse("smj1.abc")
