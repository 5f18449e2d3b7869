"""Stand-ins for an SSH session's streams (:class:`shipmate.paas.sshserver.Streams`)."""

from __future__ import annotations


class BufferWriter:
    """Collects what is written, as an SSH channel's stdout or stderr would send it."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        """Keep ``data``."""
        self.data += data

    async def drain(self) -> None:
        """Nothing to wait for: the buffer takes everything at once."""


class EmptyReader:
    """Standard input that is at its end from the start."""

    async def read(self, n: int = -1) -> bytes:
        """End of input."""
        return b""
