"""Shared bits of the converge tests."""

from __future__ import annotations

import textwrap

from shipmate.errors import ValidationError
from shipmate.spec.manifest import Manifest, parse_manifest


class AutoClock:
    """A clock whose sleeps return at once, moving time forward (the health gate polls)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def manifest(text: str, files: dict[str, str] | None = None,
             path: str = "/srv/stack.yaml") -> Manifest:
    def read(p: str) -> str:
        if files is None or p not in files:
            raise ValidationError(f"cannot read {p}")
        return files[p]

    return parse_manifest(textwrap.dedent(text), path, read_file=read)


STACK = """\
    name: stack
    containers:
      db:
        image: shipmate/base:bookworm
        command: [sleep, infinity]
        env: {DB_PASSWORD: hunter2}
      api:
        image: example/api:1
        command: [sleep, infinity]
        env: {MODE: prod, DEBUG: "0"}
        ports: ["8080:80"]
        depends_on: [db]
      worker:
        image: shipmate/base:bookworm
        command: [sleep, infinity]
        env: {QUEUE: jobs}
        depends_on: [db]
"""
