"""What Shipmate needs from a container engine. :class:`shipmate.engine.docker.DockerEngine`
implements it over docker-py (the only module that sees docker-py); the in-memory
:class:`shipmate.testing.engine.FakeEngine` implements it for unit tests.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from shipmate.spec.container import ContainerSpec, PortMapping


@dataclasses.dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine reports it (``docker inspect``, digested)."""

    id: str
    name: str
    image: str  # the reference it was created from
    image_id: str  # sha256:...
    state: str  # created, running, exited, paused, restarting, dead
    labels: Mapping[str, str]
    env: Mapping[str, str]
    ports: tuple[PortMapping, ...] = ()  # actual host bindings
    health: str | None = None  # starting, healthy, unhealthy, or None without a check
    pid: int = 0
    exit_code: int = 0
    ip_address: str = ""
    started_at: str = ""
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def running(self) -> bool:
        """True while the container's process runs."""
        return self.state == "running"


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """An image in the engine's store."""

    id: str  # sha256:...
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    size: int = 0  # bytes, with its parent layers


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    """A bridge network of the engine."""

    name: str
    subnet: str  # 172.18.0.0/16
    gateway: str  # the host's address on it: 172.18.0.1
    internal: bool  # no route out of the host


@dataclasses.dataclass(frozen=True)
class EngineEvent:
    """One event from the engine's event stream."""

    type: str  # container, image, network, volume
    action: str  # create, start, die, destroy, health_status: healthy, ...
    id: str
    attributes: Mapping[str, str]
    time: float


class Engine(Protocol):
    """Container engine operations, async. Errors are :class:`shipmate.errors.EngineError`
    (``EngineUnavailableError`` when no engine answers, ``NotFoundError`` for a missing
    container or image)."""

    async def version(self) -> Mapping[str, Any]:
        """Engine version info (``Version``, ``ApiVersion``, ...)."""
        ...

    async def create(self, spec: ContainerSpec, *, extra_labels: Mapping[str, str] = ...) -> str:
        """Create (not start) a container from ``spec``; labels it with the spec hash.
        Returns the container ID."""
        ...

    async def start(self, container: str) -> None:
        """Start a created or stopped container."""
        ...

    async def stop(self, container: str, *, timeout: float = 10) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout``). Stopping a stopped one is fine."""
        ...

    async def remove(self, container: str, *, force: bool = False) -> None:
        """Remove a container; a missing one is fine."""
        ...

    async def rename(self, container: str, name: str) -> None:
        """Rename a container (``docker rename``); the new name must be free."""
        ...

    async def update(self, container: str, *, restart: str) -> None:
        """Change a container's restart policy in place (``docker update --restart``)."""
        ...

    async def inspect(self, container: str) -> ContainerInfo | None:
        """The container by ID or name, or None."""
        ...

    async def list(
        self, labels: Mapping[str, str] | None = None, *, all: bool = True
    ) -> list[ContainerInfo]:
        """Containers whose labels include ``labels`` (all states unless ``all`` is False)."""
        ...

    def logs(
        self, container: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """Log lines (stdout and stderr), following new output with ``follow``."""
        ...

    def events(
        self, filters: Mapping[str, Sequence[str]] | None = None
    ) -> AsyncIterator[EngineEvent]:
        """The engine's event stream from now on."""
        ...

    async def exec(self, container: str, command: Sequence[str]) -> tuple[int, str]:
        """Run ``command`` in a running container; returns exit code and combined output."""
        ...

    async def wait(self, container: str) -> int:
        """Wait for the container to stop; returns its exit code."""
        ...

    async def ensure_network(self, name: str, *, internal: bool,
                             labels: Mapping[str, str] | None = None) -> NetworkInfo:
        """The bridge network ``name``, created (``internal``: no route beyond the host)
        when missing."""
        ...

    async def build(
        self,
        context: str,
        tag: str,
        *,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] | None = None,
        network_mode: str | None = None,
        labels: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> str:
        """Build ``context`` (a directory) into ``tag``, passing each log line to ``on_line``
        as it comes. Returns the image ID; a failed build raises EngineError with the log tail."""
        ...

    async def import_image(self, chunks: AsyncIterator[bytes], repository: str, tag: str) -> str:
        """``docker import`` of a root filesystem tar stream; returns the image ID."""
        ...

    def save_image(self, name: str) -> AsyncIterator[bytes]:
        """``docker save`` as a tar stream."""
        ...

    async def load_image(self, chunks: AsyncIterator[bytes]) -> builtins.list[str]:
        """``docker load`` of a tar stream; returns the loaded tags or IDs."""
        ...

    async def image(self, name: str) -> ImageInfo | None:
        """The image by name or ID, or None."""
        ...

    async def tag_image(self, image: str, repository: str, tag: str) -> None:
        """Tag an image."""
        ...

    async def remove_image(self, name: str, *, force: bool = False) -> None:
        """Remove an image; a missing one is fine."""
        ...

    async def remove_volume(self, name: str) -> None:
        """Remove a named volume and its data; a missing one is fine, one in use by a
        container is an EngineError."""
        ...

    async def close(self) -> None:
        """Release the client."""
        ...
