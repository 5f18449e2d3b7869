"""Open the store backend the settings choose (``SHIPMATE_STORE``)."""

from __future__ import annotations

import importlib
import inspect

from shipmate.config import Config
from shipmate.store.base import Store


def etcd_endpoints(config: Config) -> list[str]:
    """``SHIPMATE_ETCD_ENDPOINTS`` split on commas, blanks dropped."""
    return [e.strip() for e in str(config.etcd_endpoints).split(",") if e.strip()]


async def open_store(config: Config) -> Store:
    """The configured store, connected: ``sqlite`` (STATE_DIR/store.db) or ``etcd``."""
    if config.store == "etcd":
        from shipmate.store.etcd import EtcdStore

        return await EtcdStore.connect(etcd_endpoints(config), timeout=float(config.etcd_timeout))
    # Imported by name so each backend's dependencies load only when chosen.
    sqlite = importlib.import_module("shipmate.store.sqlite")
    opened = sqlite.SqliteStore.open(config.state_dir / "store.db")
    store: Store = await opened if inspect.isawaitable(opened) else opened
    return store
