"""Join tokens: short-lived, single-use secrets that let one machine join the cluster.

A token reads ``smj1.SECRET.FINGERPRINT``: 128 random bits, and the SHA-256 fingerprint of the
cluster CA's certificate, so the joiner can check it talks to the right cluster before it
sends anything (it pins the CA, as ``kubeadm join --discovery-token-ca-cert-hash`` does).
The store keeps only a hash of the secret, under a lease that ends with the token's life;
joining deletes that key in a transaction that succeeds for one joiner only.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time

from shipmate.errors import ValidationError
from shipmate.store.base import Compare, KeyValue, Op, Store

PREFIX = "/shipmate/cluster/join-tokens/"
DEFAULT_TTL = 900.0  # 15 minutes
MAX_TTL = 86400.0
_TOKEN = re.compile(r"^smj1\.([0-9a-f]{32})\.([0-9a-f]{64})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(fingerprint: str) -> tuple[str, str]:
    """A fresh token for the CA with ``fingerprint``, and the hash the store keeps."""
    secret = secrets.token_hex(16)
    return f"smj1.{secret}.{fingerprint}", _digest(secret)


def parse(token: str) -> tuple[str, str]:
    """(secret hash, CA fingerprint) of a token; a malformed one is a ValidationError."""
    match = _TOKEN.fullmatch(token.strip())
    if not match:
        raise ValidationError("that is not a join token",
                              hint="copy it whole from `shipmate cluster join-token` "
                                   "(smj1.<32 hex>.<64 hex>)")
    return _digest(match.group(1)), match.group(2)


def check_ttl(ttl: float) -> float:
    """A token lifetime in seconds, 60 s to a day."""
    if not 60 <= ttl <= MAX_TTL:
        raise ValidationError(f"a join token lives 60 s to {MAX_TTL:.0f} s, not {ttl:g}",
                              hint="e.g. --ttl 900 (15 minutes, the default)")
    return ttl


async def create(store: Store, fingerprint: str, ttl: float, actor: str = "") -> dict[str, str]:
    """Store a new token's hash under a lease of ``ttl`` seconds; the token and its expiry."""
    token, digest = new_token(fingerprint)
    lease = await store.grant(check_ttl(ttl))
    expires = time.time() + ttl
    await store.put(PREFIX + digest, json.dumps({"expires": expires, "by": actor}), lease=lease)
    return {"token": token, "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(expires))}


async def _live(store: Store, token: str) -> KeyValue | None:
    try:
        digest, _ = parse(token)
    except ValidationError:
        return None
    kv = await store.get(PREFIX + digest)
    if kv is None or float(json.loads(kv.value).get("expires", 0)) < time.time():
        return None  # an expired one: its lease removes it within a second; do not wait
    return kv


async def valid(store: Store, token: str) -> bool:
    """True while ``token`` is alive and unused (it is not used up by asking)."""
    return await _live(store, token) is not None


async def consume(store: Store, token: str) -> bool:
    """Use ``token`` up: True for exactly one caller while it is alive, False when it is
    unknown, expired or already used (or malformed)."""
    kv = await _live(store, token)
    if kv is None:
        return False
    res = await store.txn([Compare.mod_is(kv.key, kv.mod_revision)], [Op.delete(kv.key)])
    return res.succeeded
