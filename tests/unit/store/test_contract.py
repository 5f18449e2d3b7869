"""The store contract (:mod:`tests.contract.store`) on the SQLite store (fixtures in
conftest.py)."""

from tests.contract.store import *  # noqa: F403 - the suite's test functions
