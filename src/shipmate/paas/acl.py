"""Who may act on which app (issue 20, as the dokku-acl plugin does): the records and the reads
the SSH server and the dashboard check before anything runs.

Records (JSON values):

- ``/shipmate/ssh-keys/<name>``  an SSH key, with ``"admin": bool`` (:mod:`.sshkeys`)
- ``/shipmate/users/<name>``     a dashboard user, with ``"admin": bool``
- ``/shipmate/acl/<app>``        ``{"names": ["alice", ...]}``: the non-admins granted ``app``

Rules (docs/security.md states them for users):

- A name is a principal: an SSH key and a dashboard user of the same name are one person,
  an admin when either record says so.
- An SSH key record without the ``admin`` field was stored before access control existed: it
  counts as admin, so that an upgrade locks nobody out (``ssh-keys:remove`` and
  ``ssh-keys:add`` without ``--admin`` make it a non-admin).
- An admin acts on every app; a non-admin only on the apps whose list names it.
- A grant names an app that exists; it goes with the app (``apps:destroy``) and follows it
  (``apps:rename``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.spec.names import validate_app_name
from shipmate.store.base import Compare, Op, Store

ACL_PREFIX = "/shipmate/acl/"
KEYS_PREFIX = "/shipmate/ssh-keys/"
USERS_PREFIX = "/shipmate/users/"
#: A principal's name: an SSH key's name or a dashboard user's (:data:`sshkeys.KEY_NAME`).
PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_CAS_TRIES = 20


def validate_principal(name: str) -> str:
    """``name`` if it can name an SSH key or a dashboard user, else ValidationError."""
    if not PRINCIPAL.fullmatch(name):
        raise ValidationError(f"Invalid user name {name[:70]!r}",
                              hint="an SSH key's or dashboard user's name: letters, digits, "
                                   "'_', '.', '@' and '-'")
    return name


def acl_key(app: str) -> str:
    """The key of an app's list of granted names (the app name is validated first)."""
    return ACL_PREFIX + validate_app_name(app)


def _json(value: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def record_is_admin(record: dict[str, Any], *, legacy_admin: bool) -> bool:
    """Whether one key or user record makes its holder an admin. ``legacy_admin``: what a
    record without the field means (True for SSH keys stored before access control)."""
    value = record.get("admin", legacy_admin)
    return value is True


async def is_admin(store: Store, name: str) -> bool:
    """True when ``name``'s SSH key or dashboard user is an admin (see the module rules)."""
    if not PRINCIPAL.fullmatch(name):
        return False
    key = await store.get(KEYS_PREFIX + name)
    if key is not None and record_is_admin(_json(key.value), legacy_admin=True):
        return True
    user = await store.get(USERS_PREFIX + name)
    return user is not None and record_is_admin(_json(user.value), legacy_admin=False)


def _names(value: bytes | None) -> list[str]:
    names = _json(value).get("names")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


async def names_for(store: Store, app: str) -> list[str]:
    """The names granted ``app`` (``acl:list``), sorted."""
    kv = await store.get(acl_key(app))
    return sorted(_names(kv.value if kv else None))


async def apps_for(store: Store, name: str) -> list[str]:
    """The apps granted to ``name``, sorted (an admin's grants too: admins need none)."""
    kvs, _ = await store.range(ACL_PREFIX)
    return sorted(kv.key[len(ACL_PREFIX):] for kv in kvs if name in _names(kv.value))


async def may_act(store: Store, name: str, app: str) -> bool:
    """True when ``name`` may act on ``app``: an admin, or granted it."""
    if await is_admin(store, name):
        return True
    kv = await store.get(acl_key(app))
    return name in _names(kv.value if kv else None)


async def known(store: Store, name: str) -> bool:
    """True when an SSH key or a dashboard user has this name."""
    return (await store.get(KEYS_PREFIX + name) is not None
            or await store.get(USERS_PREFIX + name) is not None)


async def grant(store: Store, app: str, name: str) -> list[str]:
    """``acl:add APP NAME``: let ``name`` act on ``app``; returns the app's names."""
    return await _change(store, app, validate_principal(name), add=True)


async def revoke(store: Store, app: str, name: str) -> list[str]:
    """``acl:remove APP NAME``: stop ``name`` acting on ``app``; returns the names left."""
    return await _change(store, app, validate_principal(name), add=False)


async def _change(store: Store, app: str, name: str, *, add: bool) -> list[str]:
    key = acl_key(app)
    for _ in range(_CAS_TRIES):
        kv = await store.get(key)
        names = _names(kv.value if kv else None)
        if add and name in names:
            raise ConflictError(f"User {name} already has permissions to {app}")
        if not add and name not in names:
            raise NotFoundError(f"User {name} has no permissions to {app}",
                                hint=f"`acl:list {app}` shows who has")
        names = sorted({*names, name}) if add else [n for n in names if n != name]
        guard = Compare.mod_is(key, kv.mod_revision if kv else 0)
        # The app must still exist when it is granted (a grant to a destroyed app would
        # carry over to a new app of that name).
        guards = [guard, *([_app_exists(app)] if add else [])]
        op = Op.put(key, json.dumps({"names": names})) if names else Op.delete(key)
        res = await store.txn(guards, [op])
        if res.succeeded:
            return names
        if add and not await app_exists(store, app):
            raise NotFoundError(f"App {app} does not exist")
    raise ConflictError("the access list kept changing while it was written",
                        hint="try again")


def _meta_key(app: str) -> str:
    return f"/shipmate/apps/{validate_app_name(app)}/meta"


async def app_exists(store: Store, app: str) -> bool:
    """True when ``app`` exists (its grants may be read and changed)."""
    return await store.get(_meta_key(app)) is not None


def _app_exists(app: str) -> Compare:
    return Compare(_meta_key(app), "version", ">", 0)


def rename_ops(old_value: bytes | None, new: str) -> list[Op]:
    """The operations that move an app's grants to its new name (``apps:rename``)."""
    names = _names(old_value)
    return [Op.put(acl_key(new), json.dumps({"names": names}))] if names else []
