import pytest

from shipmate.daemon.compactor import Compactor
from shipmate.errors import CompactedError
from shipmate.testing import memory_store


async def test_compacts_only_beyond_keep_and_old_watches_fail() -> None:
    store = await memory_store()
    try:
        first = await store.put("/k", "0")
        comp = Compactor(store, keep=10)
        assert await comp.once() == 0
        for i in range(20):
            await store.put("/k", str(i))
        rev = await store.revision()
        assert await comp.once() == rev - 10
        with pytest.raises(CompactedError):  # at watch() or at the first event: both allowed
            watch = await store.watch("/k", start_revision=first)
            await watch.__anext__()
        recent = await store.watch("/k", start_revision=rev - 5)
        event = await recent.__anext__()
        assert event.revision == rev - 5
        await recent.close()
    finally:
        await store.close()
