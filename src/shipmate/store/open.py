"""Open the store backend the settings choose (``SHIPMATE_STORE``)."""

from __future__ import annotations

from shipmate.config import Config
from shipmate.store.base import Store
from shipmate.store.metered import MeteredStore


def etcd_endpoints(config: Config) -> list[str]:
    """``SHIPMATE_ETCD_ENDPOINTS`` split on commas, blanks dropped."""
    return [e.strip() for e in str(config.etcd_endpoints).split(",") if e.strip()]


async def open_store(config: Config) -> Store:
    """The configured store, connected: ``sqlite`` (STATE_DIR/store.db) or ``etcd``, each
    request timed into the metrics (:class:`~shipmate.store.metered.MeteredStore`)."""
    # Imported here so that only the chosen backend's client library is loaded.
    if config.store == "etcd":
        from shipmate.store.etcd import EtcdStore

        return MeteredStore(await EtcdStore.connect(etcd_endpoints(config),
                                                    timeout=float(config.etcd_timeout)))
    from shipmate.store.sqlite import SqliteStore

    return MeteredStore(await SqliteStore.open(config.state_dir / "store.db"))
