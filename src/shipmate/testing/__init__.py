"""Fakes shipped with the package, for unit tests of Shipmate and of code built on it.

- :class:`FakeClock`: time that moves only when told to.
- :func:`memory_store`: the embedded store on an in-memory SQLite database.
- :class:`FakeEngine` (in :mod:`shipmate.testing.engine`): an in-memory Docker engine.
- :class:`~shipmate.testing.streams.BufferWriter`, :class:`~shipmate.testing.streams.EmptyReader`:
  an SSH session's streams.
"""

from shipmate.testing.clock import FakeClock
from shipmate.testing.engine import FakeEngine
from shipmate.testing.store import memory_store

__all__ = ["FakeClock", "FakeEngine", "memory_store"]
