"""Fakes for router unit tests."""

from __future__ import annotations

from shipmate.errors import ValidationError
from shipmate.router.render import RenderOptions
from shipmate.testing import FakeClock


class FakeProxy:
    """Stands in for :class:`shipmate.router.nginx.Nginx`: keeps the live text, can refuse."""

    def __init__(self, http_port: int = 8080) -> None:
        self.http_port = http_port
        self.render_options = RenderOptions()
        self.live: str | None = None
        self.applied: list[str] = []
        self.refuse: str | None = None  # when set, every apply is refused with this message

    async def apply(self, config_text: str) -> bool:
        if self.refuse is not None:
            raise ValidationError(self.refuse)
        if config_text == self.live:
            return False
        self.live = config_text
        self.applied.append(config_text)
        return True


class WatchedClock(FakeClock):
    """A FakeClock that counts its sleepers, so a test can wait until the code under test is
    asleep before advancing time (advancing earlier would not wake it)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await super().sleep(seconds)
        finally:
            self.sleeping -= 1
