"""SSH public keys allowed to push and run commands (Dokku's ``ssh-keys:*``), each an admin or
not (``"admin"`` in its record; a record without it predates access control and counts as an
admin: :mod:`.acl`)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.paas.acl import record_is_admin
from shipmate.store.base import Compare, Op, Store

PREFIX = "/shipmate/ssh-keys/"
#: Written by every ssh-keys:add: a key added once means later keys are not the first.
FIRST_ADDED = "/shipmate/ssh-keys-first-added"
_CAS_TRIES = 10
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_RSA_BITS = 2048
MAX_KEY_TEXT = 16384  # an RSA-16384 public key line is about 2.8 kB


def weakness(key: Any) -> str | None:
    """Why an (asyncssh) public key is too weak to let in, or None. DSA keys are 1024-bit by
    definition and OpenSSH has dropped them; RSA under 2048 bits is refused (NIST's floor)."""
    algorithm = key.get_algorithm()
    if algorithm == "ssh-dss":
        return "DSA (ssh-dss) keys are refused"
    if algorithm == "ssh-rsa":
        bits = int(key.pyca_key.key_size)
        if bits < MIN_RSA_BITS:
            return f"RSA keys need at least {MIN_RSA_BITS} bits, this one has {bits}"
    return None


def parse_public_key(text: str) -> tuple[str, str]:
    """Validate one OpenSSH public key line; returns (normalised key, SHA256 fingerprint)."""
    import asyncssh

    if len(text) > MAX_KEY_TEXT:
        raise ValidationError(f"A public key is one line of less than {MAX_KEY_TEXT} bytes",
                              hint="give the contents of a .pub file")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValidationError("Expected exactly one public key",
                              hint="pass one line such as `ssh-ed25519 AAAA... you@host`")
    try:
        key = asyncssh.import_public_key(lines[0])
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValidationError(f"Invalid public key: {exc}",
                              hint="give the contents of a .pub file, not a private key") from exc
    problem = weakness(key)
    if problem is not None:
        raise ValidationError(f"Refusing a weak public key: {problem}",
                              hint="make a new key: ssh-keygen -t ed25519")
    return key.export_public_key("openssh").decode().strip(), str(key.get_fingerprint("sha256"))


def validate_key_name(name: str) -> str:
    """``name`` if it can name a key (and so a store key and a URL segment)."""
    if not KEY_NAME.fullmatch(name):
        raise ValidationError(f"Invalid key name {name!r}",
                              hint="use letters, digits, '_', '.', '@' and '-'")
    return name


class SshKeys:
    """The allowed keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, name: str, public_key: str, *, admin: bool = False) -> dict[str, Any]:
        """Allow ``public_key`` under ``name``; a name or a key may be added only once. The
        key is an admin if ``admin`` says so, or if it is the first key ever added (so a new
        install has an admin; :mod:`.acl` says what an admin may do)."""
        if not KEY_NAME.fullmatch(name):
            raise ValidationError(f"Invalid key name {name!r}",
                                  hint="use letters, digits, '_', '.', '@' and '-'")
        key, fingerprint = parse_public_key(public_key)
        for _ in range(_CAS_TRIES):
            existing = await self.list()
            if any(k["fingerprint"] == fingerprint for k in existing):
                raise ConflictError(f"Duplicate ssh public key specified: {fingerprint}")
            # The first key ever: none stored now, and none stored before (the marker), so
            # removing every key and adding one does not make an admin by accident.
            first = not existing and await self.store.get(FIRST_ADDED) is None
            record = {"name": name, "key": key, "fingerprint": fingerprint,
                      "added": time.time(), "admin": admin or first}
            guards = [Compare.missing(PREFIX + name),
                      *([Compare.missing(FIRST_ADDED)] if first else [])]
            res = await self.store.txn(guards, [Op.put(PREFIX + name, json.dumps(record)),
                                                Op.put(FIRST_ADDED, name)])
            if res.succeeded:
                return record
            if await self.store.get(PREFIX + name) is not None:
                raise ConflictError(f"Duplicate ssh key name specified: {name}",
                                    hint=f"remove it first with ssh-keys:remove {name}")
        raise ConflictError("keys kept changing while this one was added", hint="try again")

    async def list(self) -> list[dict[str, Any]]:
        """Every allowed key, by name."""
        kvs, _ = await self.store.range(PREFIX)
        records = [json.loads(kv.value) for kv in kvs]
        for rec in records:  # a record stored before access control is an admin's
            rec["admin"] = record_is_admin(rec, legacy_admin=True)
        return records

    async def remove(self, name: str) -> None:
        """Stop allowing a key."""
        validate_key_name(name)
        if not await self.store.delete(PREFIX + name):
            raise NotFoundError(f"No public key found with name {name!r}")

    async def find(self, fingerprint: str) -> dict[str, Any] | None:
        """The record whose key has this fingerprint, if allowed."""
        for rec in await self.list():
            if rec["fingerprint"] == fingerprint:
                return rec
        return None
