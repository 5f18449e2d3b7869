"""The desired-state store: one interface (etcd's model), two backends."""

from shipmate.store.base import (
    Compare,
    Event,
    KeyValue,
    Op,
    Store,
    TxnResult,
    Watch,
)

__all__ = ["Compare", "Event", "KeyValue", "Op", "Store", "TxnResult", "Watch"]
