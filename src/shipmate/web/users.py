"""Dashboard users: their records in the store and their passwords (``shipmate users:*``).

- A user lives at ``/shipmate/users/<name>`` as ``{"name", "admin", "hash", "added"}``.
  A name follows the SSH key names' rule (it is a principal: a key and a user of one name
  are one person, docs/security.md), so grants at ``/shipmate/acl/<app>`` name both.
- The password is kept as an scrypt hash (memory-hard, in the standard library):
  ``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>``, base64 salt (16 random bytes) and 32-byte
  hash, N = 2**15, r = 8, p = 1 (32 MiB and about 0.1 s per check: OWASP's minimum is
  N = 2**17 with r = 8 at 128 MiB; a daemon checking logins on a small machine keeps to
  32 MiB, and logins are rate-limited besides, see :mod:`.dashboard.auth`). The
  parameters are in each record, so raising them later keeps old hashes valid.
- Checking a password of a user that does not exist still computes a hash, so the time a
  refusal takes does not say whether the name exists.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.store.base import Compare, Op, Store

PREFIX = "/shipmate/users/"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LOG2_N, R, P, DKLEN, SALT_BYTES = 15, 8, 1, 32, 16
MIN_PASSWORD, MAX_PASSWORD = 10, 1024
_MAX_LOG2_N = 20  # refuse a stored hash that would ask for more than 1 GiB


def validate_user_name(name: str) -> str:
    """A user name, as SSH key names are: letters, digits, ``_ . @ -``, at most 64."""
    if not USER_NAME.fullmatch(name):
        raise ValidationError(f"Invalid user name {name!r}",
                              hint="use letters, digits, '_', '.', '@' and '-' (at most 64)")
    return name


def validate_password(password: str) -> str:
    """A password long enough to resist guessing, short enough to hash."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"The password is shorter than {MIN_PASSWORD} characters",
                              hint="use a longer one, e.g. `openssl rand -base64 18`")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"The password is longer than {MAX_PASSWORD} characters")
    return password


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN,
                          maxmem=256 * n * r + 2**20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    """The encoded scrypt hash of ``password`` with a fresh salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, log2_n, R, P)
    return f"scrypt${log2_n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded`` (compared in constant time); False for a
    hash that cannot be read."""
    try:
        kind, log2_n, r, p, salt, digest = encoded.split("$")
        params = int(log2_n), int(r), int(p)
        if kind != "scrypt" or not 1 <= params[0] <= _MAX_LOG2_N or not 0 < params[1] <= 32 \
                or params[2] != 1:
            return False
        want = base64.b64decode(digest, validate=True)
        got = _scrypt(password, base64.b64decode(salt, validate=True), *params)
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A user record without its hash (what the API and ``users:list`` show)."""
    return {"name": record["name"], "admin": bool(record.get("admin")),
            "added": record.get("added", 0)}


class Users:
    """The dashboard's users in the store. ``log2_n`` is scrypt's cost (tests lower it)."""

    def __init__(self, store: Store, *, log2_n: int = LOG2_N) -> None:
        self.store = store
        self.log2_n = log2_n
        self._dummy = ""  # a hash to check unknown names against (made on first use)

    async def add(self, name: str, password: str, admin: bool = False) -> dict[str, Any]:
        """Add a user; a name may be added once."""
        validate_user_name(name)
        validate_password(password)
        digest = await asyncio.to_thread(hash_password, password, log2_n=self.log2_n)
        record = {"name": name, "admin": admin, "hash": digest, "added": time.time()}
        res = await self.store.txn([Compare.missing(PREFIX + name)],
                                   [Op.put(PREFIX + name, json.dumps(record))])
        if not res.succeeded:
            raise ConflictError(f"User {name} exists already",
                                hint=f"remove it first with users:remove {name}")
        return public(record)

    async def get(self, name: str) -> dict[str, Any] | None:
        """The user's record (with its hash), or None."""
        if not USER_NAME.fullmatch(name):
            return None
        kv = await self.store.get(PREFIX + name)
        if kv is None:
            return None
        try:
            data = json.loads(kv.value)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def list(self) -> list[dict[str, Any]]:
        """Every user, by name, without hashes."""
        kvs, _ = await self.store.range(PREFIX)
        return [public(json.loads(kv.value)) for kv in kvs]

    async def remove(self, name: str) -> None:
        """Remove a user (their sessions end at their next request: each request reads the
        user's record)."""
        validate_user_name(name)
        if not await self.store.delete(PREFIX + name):
            raise NotFoundError(f"No user named {name!r}", hint="users:list shows the users")

    async def check(self, name: str, password: str) -> dict[str, Any] | None:
        """The user's public record when ``password`` is theirs, else None (taking as long
        for an unknown name as for a wrong password)."""
        record = await self.get(name)
        if record is None:
            if not self._dummy:
                self._dummy = await asyncio.to_thread(hash_password, secrets.token_hex(8),
                                                      log2_n=self.log2_n)
            await asyncio.to_thread(verify_password, password, self._dummy)
            return None
        ok = await asyncio.to_thread(verify_password, password[:MAX_PASSWORD],
                                     str(record.get("hash", "")))
        return public(record) if ok else None
