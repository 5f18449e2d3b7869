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
        self.refuse_containing: str | None = None  # configs with this text are refused
        self.checked: list[str] = []

    async def apply(self, config_text: str) -> bool:
        if self.refuse is not None:
            raise ValidationError(self.refuse)
        if self.refuse_containing and self.refuse_containing in config_text:
            raise ValidationError(f"nginx refuses {self.refuse_containing}")
        if config_text == self.live:
            return False
        self.live = config_text
        self.applied.append(config_text)
        return True

    async def check(self, config_text: str) -> str | None:
        self.checked.append(config_text)
        if self.refuse_containing and self.refuse_containing in config_text:
            return f"nginx refuses {self.refuse_containing}"
        return None


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
