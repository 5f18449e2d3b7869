"""SSH public keys allowed to push and run commands (Dokku's ``ssh-keys:*``)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.store.base import Compare, Op, Store

PREFIX = "/shipmate/ssh-keys/"
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


class SshKeys:
    """The allowed keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, name: str, public_key: str) -> dict[str, Any]:
        """Allow ``public_key`` under ``name``; a name or a key may be added only once."""
        if not KEY_NAME.fullmatch(name):
            raise ValidationError(f"Invalid key name {name!r}",
                                  hint="use letters, digits, '_', '.', '@' and '-'")
        key, fingerprint = parse_public_key(public_key)
        if any(k["fingerprint"] == fingerprint for k in await self.list()):
            raise ConflictError(f"Duplicate ssh public key specified: {fingerprint}")
        record = {"name": name, "key": key, "fingerprint": fingerprint, "added": time.time()}
        res = await self.store.txn([Compare.missing(PREFIX + name)],
                                   [Op.put(PREFIX + name, json.dumps(record))])
        if not res.succeeded:
            raise ConflictError(f"Duplicate ssh key name specified: {name}",
                                hint=f"remove it first with ssh-keys:remove {name}")
        return record

    async def list(self) -> list[dict[str, Any]]:
        """Every allowed key, by name."""
        kvs, _ = await self.store.range(PREFIX)
        return [json.loads(kv.value) for kv in kvs]

    async def remove(self, name: str) -> None:
        """Stop allowing a key."""
        if not await self.store.delete(PREFIX + name):
            raise NotFoundError(f"No public key found with name {name!r}")

    async def find(self, fingerprint: str) -> dict[str, Any] | None:
        """The record whose key has this fingerprint, if allowed."""
        for rec in await self.list():
            if rec["fingerprint"] == fingerprint:
                return rec
        return None
