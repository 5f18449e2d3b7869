"""Names shared by the engine tests: containers they create carry ``TEST_LABEL=RUN_ID`` and
are removed by the ``engine`` fixture in tests/integration/conftest.py."""

from __future__ import annotations

import uuid

TEST_LABEL = "shipmate.test-run"
RUN_ID = uuid.uuid4().hex[:10]


def name(prefix: str) -> str:
    """A unique container name for a test."""
    return f"sm-test-{prefix}-{uuid.uuid4().hex[:8]}"
