"""An in-memory container engine for unit tests (of converge, agents, deploys, bootstrap).

It behaves like a small, instant dockerd: containers with states, labels (including the spec
hash), generated IDs and port bindings; images; an event stream. Every write is recorded in
:attr:`FakeEngine.writes`, so a test can assert "no Docker write was made"::

    engine = FakeEngine(images=["shipmate/base:bookworm"])
    cid = await engine.create(spec)
    await engine.start(cid)
    engine.set_health(cid, "unhealthy")   # hooks drive what a real container would do
    engine.exit(cid, 137)
    assert [w.action for w in engine.writes] == ["create", "start"]
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from shipmate.clock import Clock, SystemClock
from shipmate.engine.base import ContainerInfo, Engine, EngineEvent, ImageInfo, NetworkInfo
from shipmate.engine.docker_spec import container_labels
from shipmate.errors import EngineConflictError, EngineError, NotFoundError
from shipmate.spec.container import ContainerSpec, PortMapping

ExecHandler = Callable[[str, Sequence[str]], tuple[int, str]]


@dataclasses.dataclass(frozen=True)
class Write:
    """One write the fake engine received: ``action`` on ``target`` (container name, image)."""

    action: str  # create, start, stop, remove, rename, update, build, import, load, tag, ...
    target: str


@dataclasses.dataclass
class FakeContainer:
    """A container's mutable state inside :class:`FakeEngine`."""

    id: str
    spec: ContainerSpec
    labels: dict[str, str]
    image_id: str
    state: str = "created"
    exit_code: int = 0
    health: str | None = None
    ports: tuple[PortMapping, ...] = ()
    pid: int = 0
    started_at: str = ""
    logs: list[str] = dataclasses.field(default_factory=list)
    restart_count: int = 0  # Docker's RestartCount: restarts by the restart policy


class FakeEngine:
    """:class:`shipmate.engine.base.Engine` in memory. ``health_on_start``: the health a
    container with a check reports once started ("healthy", or "starting" to drive it with
    :meth:`set_health`)."""

    def __init__(self, *, images: Iterable[str] = (), health_on_start: str = "healthy",
                 clock: Clock | None = None) -> None:
        #: What a stop that has to wait out its timeout sleeps on (see :meth:`ignore_sigterm`).
        self.clock: Clock = clock or SystemClock()
        self.containers: dict[str, FakeContainer] = {}
        self.images: dict[str, ImageInfo] = {}  # by reference and by ID
        self.networks: dict[str, NetworkInfo] = {}
        self.removed_volumes: list[str] = []
        self.writes: builtins.list[Write] = []
        self.emitted: builtins.list[EngineEvent] = []  # every event, for assertions
        self.health_on_start = health_on_start
        self.exec_handler: ExecHandler = lambda container, command: (0, "")
        self.fail: dict[str, Exception] = {}  # method name -> error raised on next call
        self._ids = itertools.count(1)
        self._ports = itertools.count(32768)
        self._pids = itertools.count(1000)
        self._subscribers: builtins.list[asyncio.Queue[EngineEvent]] = []
        self._changed = asyncio.Event()
        self._deaf: set[str] = set()  # containers whose process ignores SIGTERM as PID 1
        for ref in images:
            self.add_image(ref)

    # -- hooks for tests -------------------------------------------------------------------

    def add_image(self, ref: str, labels: Mapping[str, str] | None = None) -> ImageInfo:
        """Put an image in the store (as if built or pulled); returns it."""
        image_id = "sha256:" + hashlib.sha256(f"{ref}:{next(self._ids)}".encode()).hexdigest()
        info = ImageInfo(id=image_id, tags=(_ref(ref),), labels=dict(labels or {}))
        self.images[_ref(ref)] = info
        self.images[image_id] = info
        return info

    def set_health(self, container: str, health: str) -> None:
        """Make a container report ``health`` (healthy, unhealthy, starting)."""
        c = self._get(container)
        c.health = health
        self._emit("container", f"health_status: {health}", c)

    def exit(self, container: str, code: int = 1) -> None:
        """Make a running container's process exit with ``code``."""
        c = self._get(container)
        c.state, c.exit_code, c.pid = "exited", code, 0
        self._emit("container", "die", c, exitCode=str(code))

    def restart_by_policy(self, container: str, code: int = 1) -> None:
        """Make the container's process exit with ``code`` and Docker start it again, as its
        restart policy does (``RestartCount`` grows by one)."""
        c = self._get(container)
        self.exit(container, code)
        c.state, c.pid, c.restart_count = "running", next(self._pids), c.restart_count + 1
        self._emit("container", "start", c)

    def ignore_sigterm(self, container: str) -> None:
        """Make the container's process one that installs no SIGTERM handler: run as PID 1
        (no ``init``), the kernel drops the signal, so :meth:`stop` waits out its timeout
        (on :attr:`clock`) and kills it (137); under an init it ends at once (143)."""
        self._deaf.add(self._get(container).id)

    def emit_log(self, container: str, *lines: str) -> None:
        """Append log lines (as if the container printed them)."""
        self._get(container).logs.extend(lines)
        self._poke()

    def container_named(self, name: str) -> FakeContainer | None:
        """The container called ``name``, if any."""
        return next((c for c in self.containers.values() if c.spec.name == name), None)

    # -- Engine ----------------------------------------------------------------------------

    async def version(self) -> Mapping[str, Any]:
        """A fixed version, like engine 20.10's."""
        self._maybe_fail("version")
        return {"Version": "20.10.24-fake", "ApiVersion": "1.41"}

    async def create(
        self, spec: ContainerSpec, *, extra_labels: Mapping[str, str] | None = None
    ) -> str:
        """Create a container (refused if the name is taken or the image is missing)."""
        self._maybe_fail("create")
        if self.container_named(spec.name):
            raise EngineConflictError(f'the container name "/{spec.name}" is already in use')
        image = self.images.get(_ref(spec.image))
        if image is None:
            raise NotFoundError(f"No such image: {spec.image}")
        for network in spec.owned_networks:  # as the Docker adapter does
            await self.ensure_network(network, internal=False)
        cid = hashlib.sha256(f"{spec.name}:{next(self._ids)}".encode()).hexdigest()
        c = FakeContainer(cid, spec, container_labels(spec, extra_labels or {}), image.id)
        self.containers[cid] = c
        self._write("create", spec.name)
        self._emit("container", "create", c)
        return cid

    async def start(self, container: str) -> None:
        """Start: running, ports bound (0 -> a generated host port), health per the hook."""
        self._maybe_fail("start")
        c = self._get(container)
        self._write("start", c.spec.name)
        if c.state == "running":
            return
        c.ports = tuple(
            dataclasses.replace(p, host_port=p.host_port or next(self._ports),
                                host_ip=p.host_ip or "0.0.0.0")
            for p in c.spec.ports)
        c.state, c.pid, c.exit_code = "running", next(self._pids), 0
        c.started_at = f"2024-01-01T00:00:{next(self._ids) % 60:02d}Z"
        c.health = self.health_on_start if c.spec.health else None
        self._emit("container", "start", c)

    async def stop(self, container: str, *, timeout: float = 10) -> None:
        """Stop a container (exit code 0 as after a clean SIGTERM; see
        :meth:`ignore_sigterm` for a process that does not stop on it)."""
        self._maybe_fail("stop")
        c = self._get(container)
        self._write("stop", c.spec.name)
        code = 0
        if c.state == "running" and c.id in self._deaf:
            code = 143 if c.spec.init else 137
            if not c.spec.init:
                await self.clock.sleep(timeout)
        if c.state == "running":
            c.state, c.pid, c.ports, c.exit_code = "exited", 0, (), code
            self._emit("container", "die", c, exitCode=str(code))
            self._emit("container", "stop", c)

    async def remove(self, container: str, *, force: bool = False) -> None:
        """Remove a container; a missing one is fine, a running one needs ``force``."""
        self._maybe_fail("remove")
        c = self._find(container)
        if c is None:
            return
        if c.state == "running" and not force:  # Docker answers 409, as to a name in use
            raise EngineConflictError(f"You cannot remove a running container {c.id}. "
                              "Stop the container before attempting removal or force remove")
        self._write("remove", c.spec.name)
        del self.containers[c.id]
        c.state = "removed"
        self._emit("container", "destroy", c)

    async def rename(self, container: str, name: str) -> None:
        """Rename (refused if ``name`` is taken by another container); the write's target is
        the new name."""
        self._maybe_fail("rename")
        c = self._get(container)
        other = self.container_named(name)
        if other is not None and other is not c:
            raise EngineConflictError(f'the container name "/{name}" is already in use')
        self._write("rename", name)
        c.spec = dataclasses.replace(c.spec, name=name)
        self._emit("container", "rename", c)

    async def update(self, container: str, *, restart: str) -> None:
        """Set the restart policy in place (reported in ``raw["HostConfig"]``)."""
        self._maybe_fail("update")
        c = self._get(container)
        if restart not in ("no", "always", "unless-stopped", "on-failure"):
            raise EngineError(f"invalid restart policy {restart!r}")
        self._write("update", c.spec.name)
        c.spec = dataclasses.replace(c.spec, restart=restart)  # type: ignore[arg-type]
        self._emit("container", "update", c)

    async def inspect(self, container: str) -> ContainerInfo | None:
        """The container by ID, ID prefix or name, or None."""
        self._maybe_fail("inspect")
        c = self._find(container)
        return self._info(c) if c else None

    async def list(
        self, labels: Mapping[str, str] | None = None, *, all: bool = True
    ) -> builtins.list[ContainerInfo]:
        """Containers whose labels include ``labels``."""
        self._maybe_fail("list")
        want = dict(labels or {})
        return [self._info(c) for c in self.containers.values()
                if want.items() <= c.labels.items() and (all or c.state == "running")]

    async def logs(
        self, container: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """The lines given to :meth:`emit_log`; with ``follow``, new ones until it stops."""
        c = self._get(container)
        sent = max(0, len(c.logs) - tail) if tail is not None else 0
        while True:
            while sent < len(c.logs):
                sent += 1
                yield c.logs[sent - 1]
            if not follow or c.state != "running":
                return
            await self._wait_change()

    async def events(
        self, filters: Mapping[str, Sequence[str]] | None = None
    ) -> AsyncIterator[EngineEvent]:
        """Events emitted from now on (filters: type, event, label k=v, container)."""
        queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                event = await queue.get()
                if _matches(event, filters or {}):
                    yield event
        finally:
            self._subscribers.remove(queue)

    async def exec(self, container: str, command: Sequence[str]) -> tuple[int, str]:
        """Answer with :attr:`exec_handler` (default: exit 0, no output)."""
        self._maybe_fail("exec")
        c = self._get(container)
        if c.state != "running":
            raise EngineConflictError(f"Container {c.id} is not running")  # 409, as Docker
        return self.exec_handler(c.spec.name, command)

    async def wait(self, container: str) -> int:
        """Wait until the container is not running; its exit code."""
        c = self._get(container)
        while c.state == "running":
            await self._wait_change()
        return c.exit_code

    async def ensure_network(self, name: str, *, internal: bool,
                             labels: Mapping[str, str] | None = None) -> NetworkInfo:
        """A network record (made once per name, on a made-up subnet)."""
        self._maybe_fail("ensure_network")
        if name not in self.networks:
            n = len(self.networks) + 18
            self.networks[name] = NetworkInfo(name, f"172.{n}.0.0/16", f"172.{n}.0.1", internal)
        return self.networks[name]

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
        """Pretend to build: a couple of log lines and a new image under ``tag``."""
        self._maybe_fail("build")
        self._write("build", tag)
        if on_line:
            on_line(f"Step 1/1 : FROM fake ({dockerfile})")
            on_line(f"Successfully tagged {tag}")
        return self.add_image(tag, labels).id

    async def import_image(self, chunks: AsyncIterator[bytes], repository: str, tag: str) -> str:
        """Consume the tar stream; a new image under ``repository:tag``."""
        self._maybe_fail("import_image")
        async for _ in chunks:
            pass
        self._write("import", f"{repository}:{tag}")
        return self.add_image(f"{repository}:{tag}").id

    async def save_image(self, name: str) -> AsyncIterator[bytes]:
        """The image's record as JSON bytes (what :meth:`load_image` reads back)."""
        info = self._image(name)
        yield json.dumps({"tags": info.tags, "labels": dict(info.labels)}).encode()

    async def load_image(self, chunks: AsyncIterator[bytes]) -> builtins.list[str]:
        """Read back what :meth:`save_image` produced."""
        self._maybe_fail("load_image")
        data = json.loads(b"".join([c async for c in chunks]))
        for tag in data["tags"]:
            self._write("load", tag)
            self.add_image(tag, data["labels"])
        return builtins.list(data["tags"])

    async def image(self, name: str) -> ImageInfo | None:
        """The image by reference or ID, or None."""
        self._maybe_fail("image")
        return self.images.get(_ref(name)) or self.images.get(name)

    async def images_list(self) -> builtins.list[ImageInfo]:
        """Every image once."""
        return builtins.list({i.id: i for i in self.images.values()}.values())

    async def tag_image(self, image: str, repository: str, tag: str) -> None:
        """Point ``repository:tag`` at ``image``."""
        info = self._image(image)
        ref = f"{repository}:{tag}"
        self._write("tag", ref)
        self.images[ref] = dataclasses.replace(info, tags=(*info.tags, ref))
        self.images[info.id] = self.images[ref]

    async def remove_volume(self, name: str) -> None:
        """Forget a named volume (refused while a container mounts it)."""
        users = [c.spec.name for c in self.containers.values()
                 if any(m.source == name for m in c.spec.mounts)]
        if users:
            raise EngineConflictError(f"remove {name}: volume is in use - [{users[0]}]")
        self._write("remove_volume", name)
        self.removed_volumes.append(name)

    async def remove_image(self, name: str, *, force: bool = False) -> None:
        """Drop a reference (and the image when no reference is left)."""
        info = self.images.get(_ref(name)) or self.images.get(name)
        if info is None:
            return
        self._write("remove_image", name)
        if name.startswith("sha256:"):
            doomed = [k for k, i in self.images.items() if i.id == info.id]
        else:
            doomed = [_ref(name)]
            if not any(i.id == info.id for k, i in self.images.items()
                       if k not in (info.id, _ref(name))):
                doomed.append(info.id)
        for key in doomed:
            self.images.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""

    # -- internals -------------------------------------------------------------------------

    def _maybe_fail(self, method: str) -> None:
        exc = self.fail.pop(method, None)
        if exc is not None:
            raise exc

    def _write(self, action: str, target: str) -> None:
        self.writes.append(Write(action, target))

    def _find(self, key: str) -> FakeContainer | None:
        if key in self.containers:
            return self.containers[key]
        return self.container_named(key) or next(
            (c for cid, c in self.containers.items() if len(key) >= 12 and cid.startswith(key)),
            None)

    def _get(self, key: str) -> FakeContainer:
        c = self._find(key)
        if c is None:
            raise NotFoundError(f"No such container: {key}")
        return c

    def _image(self, name: str) -> ImageInfo:
        info = self.images.get(_ref(name)) or self.images.get(name)
        if info is None:
            raise NotFoundError(f"No such image: {name}")
        return info

    def _info(self, c: FakeContainer) -> ContainerInfo:
        return ContainerInfo(
            id=c.id, name=c.spec.name, image=c.spec.image, image_id=c.image_id, state=c.state,
            labels=dict(c.labels), env=c.spec.env_dict, ports=c.ports, health=c.health,
            pid=c.pid, exit_code=c.exit_code,
            ip_address=f"172.17.0.{2 + int(c.id[:2], 16) % 250}" if c.state == "running" else "",
            started_at=c.started_at,
            # as ``docker inspect`` reports it, so a policy changed by :meth:`update` shows
            raw={"RestartCount": c.restart_count,
                 "HostConfig": {"RestartPolicy": {"Name": c.spec.restart},
                                "Memory": c.spec.memory or 0,
                                "MemoryReservation": c.spec.memory_reservation or 0,
                                "NanoCpus": round((c.spec.cpus or 0) * 1_000_000_000),
                                "Init": c.spec.init or None}},
        )

    def _emit(self, type_: str, action: str, c: FakeContainer, **extra: str) -> None:
        event = EngineEvent(type_, action, c.id, {**c.labels, "name": c.spec.name,
                                                  "image": c.spec.image, **extra},
                            float(len(self.emitted)))
        self.emitted.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()


def _ref(name: str) -> str:
    """``name`` with the implicit ``:latest`` tag, unless it is an ID."""
    if name.startswith("sha256:") or ":" in name.rpartition("/")[2]:
        return name
    return f"{name}:latest"


def _matches(event: EngineEvent, filters: Mapping[str, Sequence[str]]) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "type": lambda v: event.type == v,
        "event": lambda v: event.action == v or event.action.startswith(v + ":"),
        "container": lambda v: v in (event.id, event.attributes.get("name")),
        "label": lambda v: (v in event.attributes if "=" not in v
                            else event.attributes.get(v.partition("=")[0]) == v.partition("=")[2]),
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check and not any(check(v) for v in values):
            return False
    return True


def _conforms(engine: FakeEngine) -> Engine:
    return engine  # mypy checks FakeEngine against the Engine protocol here
