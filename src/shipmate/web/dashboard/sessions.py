"""Dashboard sessions, kept server-side in the store so that every machine's dashboard (the
router may send a browser to any of them) knows them, and a logout ends one everywhere.

- The browser holds a random token (32 bytes, URL-safe base64) in a cookie; the store holds
  the session at ``/shipmate/sessions/<sha256 of the token>``, so whoever reads the store
  cannot use what is there.
- A session lives :data:`TTL` seconds from its login: its record is written under a store
  lease of that length (the store drops it then) and carries its expiry, checked on
  every read as well. It holds the user's name and the session's CSRF token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable

from shipmate.store.base import Store

PREFIX = "/shipmate/sessions/"
TTL = 12 * 3600.0
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclasses.dataclass(frozen=True)
class Session:
    """One logged-in browser: whose, its CSRF token, and until when."""

    user: str
    csrf: str
    created: float
    expires: float


def session_key(token: str) -> str:
    """Where the session of ``token`` is kept (the token's digest, never the token)."""
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (cookie values and CSRF tokens)."""
    return secrets.token_urlsafe(32)


class Sessions:
    """Sessions in ``store``; ``wall`` is the clock their expiry is read on."""

    def __init__(self, store: Store, *, ttl: float = TTL,
                 wall: Callable[[], float] = time.time) -> None:
        self.store, self.ttl, self.wall = store, ttl, wall

    async def create(self, user: str) -> tuple[str, Session]:
        """A new session of ``user``: its cookie token and its record."""
        token, now = new_token(), self.wall()
        session = Session(user, new_token(), now, now + self.ttl)
        lease = await self.store.grant(self.ttl)
        await self.store.put(session_key(token), json.dumps(dataclasses.asdict(session)),
                             lease=lease)
        return token, session

    async def get(self, token: str) -> Session | None:
        """The live session of ``token``, or None (unknown, malformed or expired)."""
        if not _TOKEN.fullmatch(token):
            return None
        kv = await self.store.get(session_key(token))
        if kv is None:
            return None
        try:
            session = Session(**json.loads(kv.value))
        except (ValueError, TypeError):
            return None
        return session if session.expires > self.wall() else None

    async def end(self, token: str) -> None:
        """Forget the session of ``token`` (logout)."""
        if _TOKEN.fullmatch(token):
            await self.store.delete(session_key(token))
