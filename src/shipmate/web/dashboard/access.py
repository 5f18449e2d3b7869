"""Which apps a dashboard user sees (issue 20's access-control layout, docs/security.md):
an admin sees every app; anyone else the apps whose ``/shipmate/acl/<app>`` record
(``{"names": ["alice", ...]}``) names them. A user name and an SSH key name that are equal
are one principal, so a grant made for a key holds here too.

:func:`read_grants` reads every app's record in one range (the per-app reads of
:mod:`shipmate.paas.acl` would cost a store round trip per app on the overview); the rest is
pure. Who is an admin is :func:`shipmate.paas.acl.is_admin`, the rule SSH keys follow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from shipmate.paas.acl import ACL_PREFIX
from shipmate.store.base import KeyValue, Store
from shipmate.web.dashboard.auth import Principal

Grants = Mapping[str, frozenset[str]]


def decode_grants(kvs: Iterable[KeyValue]) -> dict[str, frozenset[str]]:
    """App -> the names granted it, from the records under :data:`ACL_PREFIX` (a record
    that cannot be read grants nothing)."""
    grants: dict[str, frozenset[str]] = {}
    for kv in kvs:
        try:
            names = json.loads(kv.value).get("names", [])
        except (ValueError, AttributeError):
            continue
        if isinstance(names, list):
            grants[kv.key.removeprefix(ACL_PREFIX)] = frozenset(
                n for n in names if isinstance(n, str))
    return grants


async def read_grants(store: Store) -> dict[str, frozenset[str]]:
    """Every app's grants."""
    kvs, _ = await store.range(ACL_PREFIX)
    return decode_grants(kvs)


def may_see(user: Principal, app: str, grants: Grants) -> bool:
    """True when ``user`` sees (and may act on) ``app``."""
    return user.admin or user.name in grants.get(app, frozenset())


def visible(user: Principal, apps: Iterable[str], grants: Grants) -> list[str]:
    """The apps of ``apps`` that ``user`` sees, sorted."""
    return sorted(a for a in apps if may_see(user, a, grants))
