"""Open the store backend the settings choose (``SHIPMATE_STORE``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipmate.config import Config
from shipmate.store.base import Store
from shipmate.store.metered import MeteredStore

if TYPE_CHECKING:
    from shipmate.store.etcd_conn import Tls

#: How often a cluster machine's etcd client re-reads the member list.
MEMBER_SYNC_SECONDS = 5.0


def etcd_endpoints(config: Config) -> list[str]:
    """``SHIPMATE_ETCD_ENDPOINTS`` split on commas, blanks dropped."""
    return [e.strip() for e in str(config.etcd_endpoints).split(",") if e.strip()]


async def open_store(config: Config, tls: Tls | None = None) -> Store:
    """The configured store, connected: ``sqlite`` (STATE_DIR/store.db) or ``etcd`` (over
    TLS with ``tls``; a cluster machine's client then follows the etcd membership), each
    request timed into the metrics (:class:`~shipmate.store.metered.MeteredStore`)."""
    # Imported here so that only the chosen backend's client library is loaded.
    if config.store == "etcd":
        from shipmate.store.etcd import EtcdStore

        return MeteredStore(await EtcdStore.connect(
            etcd_endpoints(config), timeout=float(config.etcd_timeout), tls=tls,
            sync_interval=MEMBER_SYNC_SECONDS if tls is not None else 0.0))
    from shipmate.store.sqlite import SqliteStore

    return MeteredStore(await SqliteStore.open(config.state_dir / "store.db"))
