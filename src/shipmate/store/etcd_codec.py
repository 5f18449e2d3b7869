"""Translation between Shipmate's store types and etcd's protobuf messages.

Every key crosses this module: the store's ``prefix`` is prepended on the way in and stripped
on the way out, so several stores (or test runs) can share one etcd without seeing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aetcd import rpc

from shipmate.errors import ValidationError
from shipmate.store.base import Compare, Event, KeyValue, Op

_TARGETS = {"version": 0, "create": 1, "mod": 2, "value": 3, "lease": 4}
_RESULTS = {"==": 0, ">": 1, "<": 2, "!=": 3}
_INT_FIELDS = {"version": "version", "create": "create_revision", "mod": "mod_revision",
               "lease": "lease"}


def prefix_end(key: bytes) -> bytes:
    """The smallest key greater than every key starting with ``key`` (etcd's range_end)."""
    trimmed = key.rstrip(b"\xff")
    if not trimmed:
        return b"\0"  # etcd: "every key >= key"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class Codec:
    """Keys and messages for one store prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def key(self, key: str) -> bytes:
        """The etcd key for ``key``."""
        return (self.prefix + key).encode()

    def span(self, key: str, prefix: bool) -> tuple[bytes, bytes]:
        """``(key, range_end)`` for one key, or for every key under ``key`` with ``prefix``."""
        raw = self.key(key)
        if not prefix:
            return raw, b""
        if not raw:
            return b"\0", b"\0"  # the whole keyspace: etcd refuses an empty key
        return raw, prefix_end(raw)

    def name(self, raw: bytes) -> str:
        """The store key for etcd key ``raw``."""
        return raw.decode()[len(self.prefix):]

    def kv(self, pb: Any) -> KeyValue:
        """A KeyValue from etcd's ``mvccpb.KeyValue``."""
        return KeyValue(
            key=self.name(pb.key), value=bytes(pb.value), create_revision=pb.create_revision,
            mod_revision=pb.mod_revision, version=pb.version, lease=pb.lease,
        )

    def event(self, pb: Any) -> Event:
        """An Event from etcd's ``mvccpb.Event`` (type 0 is PUT, 1 is DELETE)."""
        prev = self.kv(pb.prev_kv) if pb.HasField("prev_kv") else None
        return Event("delete" if pb.type == 1 else "put", self.kv(pb.kv), prev)

    def compare(self, cmp: Compare) -> Any:
        """An etcd ``Compare`` guard."""
        fields: dict[str, Any] = {
            "key": self.key(cmp.key), "target": _TARGETS[cmp.target], "result": _RESULTS[cmp.op],
        }
        if cmp.target == "value":
            if not isinstance(cmp.value, bytes | str):
                raise ValidationError(f"compare on the value of {cmp.key!r} needs bytes")
            fields["value"] = cmp.value.encode() if isinstance(cmp.value, str) else cmp.value
        else:
            if not isinstance(cmp.value, int):
                raise ValidationError(f"compare on the {cmp.target} of {cmp.key!r} needs an int")
            fields[_INT_FIELDS[cmp.target]] = cmp.value
        return rpc.Compare(**fields)

    def op(self, op: Op) -> Any:
        """An etcd ``RequestOp``."""
        if op.kind == "put":
            return rpc.RequestOp(
                request_put=rpc.PutRequest(key=self.key(op.key), value=op.value, lease=op.lease)
            )
        key, end = self.span(op.key, op.prefix)
        if op.kind == "delete":
            return rpc.RequestOp(
                request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=end, prev_kv=True)
            )
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, range_end=end))

    def txn(self, compares: Sequence[Compare], success: Sequence[Op],
            failure: Sequence[Op]) -> Any:
        """An etcd ``TxnRequest``."""
        return rpc.TxnRequest(
            compare=[self.compare(c) for c in compares],
            success=[self.op(o) for o in success],
            failure=[self.op(o) for o in failure],
        )

    def op_result(self, pb: Any) -> tuple[KeyValue, ...]:
        """The key-values of one ``ResponseOp``: read ones for a get, deleted ones for a
        delete, none for a put."""
        which = pb.WhichOneof("response")
        if which == "response_range":
            return tuple(self.kv(kv) for kv in pb.response_range.kvs)
        if which == "response_delete_range":
            return tuple(self.kv(kv) for kv in pb.response_delete_range.prev_kvs)
        return ()
