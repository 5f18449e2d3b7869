"""The Docker engine adapter over docker-py: the only module that imports docker or sees its
errors (:func:`map_errors` turns them into :mod:`shipmate.errors`).

docker-py is synchronous. Calls run on this adapter's own thread pool (so a long ``wait`` or a
slow build does not starve asyncio's default executor); streams run one thread each
(:mod:`.docker_streams`). The engine address is always explicit (``SHIPMATE_DOCKER_HOST``),
never a guessed CLI context.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from shipmate.engine import docker_spec
from shipmate.engine.base import ContainerInfo, Engine, EngineEvent, ImageInfo, NetworkInfo
from shipmate.engine.docker_streams import (
    NO_STAMP,
    LogStamp,
    aiter_blocking,
    blocking_chunks,
    split_lines,
    split_stamp,
)
from shipmate.errors import (
    EngineConflictError,
    EngineError,
    EngineUnavailableError,
    NotFoundError,
    ShipmateError,
)
from shipmate.spec.container import ContainerSpec

T = TypeVar("T")
START_HINT = "start one: dockerd >/var/log/dockerd.log 2>&1 &  (or run scripts/bootstrap)"
_BUILD_TAIL = 15


def map_errors(exc: BaseException, host: str = "") -> BaseException:
    """The one place docker-py's and requests' exceptions become Shipmate's errors."""
    if isinstance(exc, ShipmateError):
        return exc
    if isinstance(exc, docker.errors.NotFound):
        return NotFoundError(_explain(exc))
    if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
        return EngineConflictError(f"Docker engine: {_explain(exc)}")
    if isinstance(exc, docker.errors.APIError):
        return EngineError(f"Docker engine: {_explain(exc)}")
    text = str(exc)
    unavailable = (requests.exceptions.ConnectionError, FileNotFoundError, ConnectionError)
    if isinstance(exc, unavailable) or (
        isinstance(exc, docker.errors.DockerException)
        and ("Connection" in text or "No such file" in text)
    ):
        return EngineUnavailableError(f"no Docker engine answers at {host}", hint=START_HINT)
    if isinstance(exc, requests.exceptions.Timeout):
        return EngineError(f"Docker engine at {host} did not answer in time: {text}")
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
        return EngineError(f"Docker engine: {text}")
    return exc


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc)


class DockerEngine:
    """:class:`shipmate.engine.base.Engine` over docker-py, at an explicit address
    (``unix:///var/run/docker.sock``, ``tcp://host:2375``)."""

    def __init__(self, docker_host: str, *, timeout: float = 120) -> None:
        self.docker_host = docker_host
        self._timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="docker"
        )

    def _client(self) -> Any:
        # Created lazily on a worker thread: "auto" asks the engine for its API version,
        # which is I/O and fails when no engine runs.
        with self._lock:
            if self._api is None:
                self._api = docker.APIClient(
                    base_url=self.docker_host, version="auto", timeout=self._timeout
                )
            return self._api

    def _convert(self, exc: BaseException) -> BaseException:
        return map_errors(exc, self.docker_host)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(api, *args, **kwargs)`` on the pool, errors mapped."""

        def run() -> T:
            try:
                return fn(self._client(), *args, **kwargs)
            except Exception as exc:
                raise self._convert(exc) from exc

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def _stream(
        self, open_stream: Callable[[Any], tuple[Iterator[Any], Any]]
    ) -> AsyncIterator[Any]:
        return aiter_blocking(lambda: open_stream(self._client()), self._convert)

    async def version(self) -> Mapping[str, Any]:
        """Engine version info (``Version``, ``ApiVersion``, ...)."""
        result: Mapping[str, Any] = await self._call(lambda api: api.version())
        return result

    async def create(
        self, spec: ContainerSpec, *, extra_labels: Mapping[str, str] | None = None
    ) -> str:
        """Create (not start) a container from ``spec``; returns its ID."""
        args = docker_spec.create_args(spec, extra_labels)
        for network in spec.owned_networks:  # a service's private network, made on demand
            await self.ensure_network(network, internal=False,
                                      labels={"shipmate.role": "service"})

        def run(api: Any) -> str:
            host_config = api.create_host_config(**args.host_config)
            cid = str(api.create_container(**args.create, host_config=host_config)["Id"])
            try:
                for network in spec.networks:  # API 1.41 creates on one network only
                    api.connect_container_to_network(cid, network)
            except Exception:
                api.remove_container(cid, force=True)
                raise
            return cid

        return await self._call(run)

    async def start(self, container: str) -> None:
        """Start a created or stopped container."""
        await self._call(lambda api: api.start(container))

    async def stop(self, container: str, *, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; a stopped container is fine."""
        await self._call(lambda api: api.stop(container, timeout=int(timeout)))

    async def remove(self, container: str, *, force: bool = False) -> None:
        """Remove a container (and its anonymous volumes); a missing one is fine."""
        with contextlib.suppress(NotFoundError):
            await self._call(lambda api: api.remove_container(container, v=True, force=force))

    async def rename(self, container: str, name: str) -> None:
        """``docker rename``; a name in use is an EngineConflictError."""
        await self._call(lambda api: api.rename(container, name))

    async def update(self, container: str, *, restart: str) -> None:
        """``docker update --restart``: the restart policy, in place (no new container)."""
        policy = {"Name": restart, "MaximumRetryCount": 0}
        await self._call(lambda api: api.update_container(container, restart_policy=policy))

    async def inspect(self, container: str) -> ContainerInfo | None:
        """The container by ID or name, or None."""
        try:
            raw = await self._call(lambda api: api.inspect_container(container))
        except NotFoundError:
            return None
        return docker_spec.container_info(raw)

    async def list(
        self, labels: Mapping[str, str] | None = None, *, all: bool = True
    ) -> list[ContainerInfo]:
        """Containers whose labels include ``labels``, inspected (gone ones are skipped)."""
        filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]}

        def run(api: Any) -> list[dict[str, Any]]:
            out = []
            for summary in api.containers(all=all, filters=filters):
                with contextlib.suppress(docker.errors.NotFound):
                    out.append(api.inspect_container(summary["Id"]))
            return out

        return [docker_spec.container_info(raw) for raw in await self._call(run)]

    async def logs(
        self, container: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """Log lines (stdout and stderr), following new output with ``follow``. A followed
        container that stops delivers its output to the last line before the stream ends."""
        last: LogStamp | None = None
        async for stamp, line in self._stamped_logs(container, follow=follow, tail=tail):
            last = stamp
            yield line
        if not follow:
            return
        # Docker 20.10 can end a follow as the container stops, before the last output has
        # been read from it (a one-off that prints and exits at once lost its tail, now and
        # then). The stored log is complete once the container has stopped: send what the
        # stream missed, the lines stamped after the last one it delivered.
        info = await self.inspect(container)
        if info is None or info.running or last == NO_STAMP:
            return
        since = None if last is None else last.epoch
        async for stamp, line in self._stamped_logs(
                container, follow=False, tail=tail if last is None else None, since=since):
            if last is None or stamp > last:
                yield line

    def _stamped_logs(self, container: str, *, follow: bool, tail: int | None,
                      since: int | None = None) -> AsyncIterator[tuple[LogStamp, str]]:
        def open_stream(api: Any) -> tuple[Iterator[tuple[LogStamp, str]], Any]:
            raw = api.logs(container, stream=True, follow=follow, timestamps=True,
                           tail=tail if tail is not None else "all", since=since)
            return (split_stamp(line) for line in split_lines(raw)), raw

        return self._stream(open_stream)

    async def events(
        self, filters: Mapping[str, Sequence[str]] | None = None
    ) -> AsyncIterator[EngineEvent]:
        """The engine's event stream from now on."""

        def open_stream(api: Any) -> tuple[Iterator[Any], Any]:
            raw = api.events(decode=True, filters={k: list(v) for k, v in (filters or {}).items()})
            return raw, raw

        async for raw in self._stream(open_stream):
            yield docker_spec.engine_event(raw)

    async def exec(self, container: str, command: Sequence[str]) -> tuple[int, str]:
        """Run ``command`` in a running container; exit code and combined output."""

        def run(api: Any) -> tuple[int, str]:
            exec_id = api.exec_create(container, list(command), stdout=True, stderr=True)["Id"]
            out = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
            return int(code or 0), out.decode("utf-8", "replace")

        return await self._call(run)

    async def wait(self, container: str) -> int:
        """Wait for the container to stop; its exit code."""
        result = await self._call(lambda api: api.wait(container, timeout=None))
        return int(result.get("StatusCode", 0))

    async def ensure_network(self, name: str, *, internal: bool,
                             labels: Mapping[str, str] | None = None) -> NetworkInfo:
        """The bridge network ``name``, created when missing (``internal``: no route beyond
        the host). Two daemons asking at once get the same network."""

        def run(api: Any) -> NetworkInfo:
            if not [n for n in api.networks(names=[name]) if n.get("Name") == name]:
                with contextlib.suppress(docker.errors.APIError):  # made meanwhile: fine
                    api.create_network(name, driver="bridge", internal=internal,
                                       labels=dict(labels or {}), check_duplicate=True)
            raw = api.inspect_network(name)
            ipam = ((raw.get("IPAM") or {}).get("Config") or [{}])[0]
            return NetworkInfo(raw["Name"], ipam.get("Subnet", ""), ipam.get("Gateway", ""),
                               bool(raw.get("Internal")))

        return await self._call(run)

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
        """Build ``context`` into ``tag`` (legacy builder: FROM resolves local images, no
        registry), passing log lines to ``on_line`` as they come. Returns the image ID."""

        def open_stream(api: Any) -> tuple[Iterator[Any], Any]:
            raw = api.build(path=context, tag=tag, dockerfile=dockerfile, rm=True, forcerm=True,
                            buildargs=dict(buildargs or {}), network_mode=network_mode,
                            labels=dict(labels or {}), decode=True, pull=False)
            return raw, raw

        tail: collections.deque[str] = collections.deque(maxlen=_BUILD_TAIL)
        splitter = _BuildLines()
        image_id = ""
        async for message in self._stream(open_stream):
            lines = splitter.feed(message) + (splitter.flush() if "error" in message else [])
            for line in lines:
                tail.append(line)
                if on_line:
                    on_line(line)
            if "error" in message:
                shown = "\n".join(tail)
                raise EngineError(f"build of {tag} failed: {str(message['error']).strip()}\n"
                                  f"{shown}", hint="fix the step above and build again")
            image_id = (message.get("aux") or {}).get("ID", image_id)
        for line in splitter.flush():
            if on_line:
                on_line(line)
        if not image_id:
            info = await self.image(tag)
            image_id = info.id if info else ""
        return image_id

    async def import_image(self, chunks: AsyncIterator[bytes], repository: str, tag: str) -> str:
        """``docker import`` of a root filesystem tar stream, streamed (never held in memory)."""
        loop = asyncio.get_running_loop()

        def run(api: Any) -> None:
            api.import_image(src=blocking_chunks(chunks, loop), repository=repository, tag=tag,
                             stream_src=True)

        await self._call(run)
        info = await self.image(f"{repository}:{tag}")
        if info is None:
            raise EngineError(f"import of {repository}:{tag} left no image")
        return info.id

    async def save_image(self, name: str) -> AsyncIterator[bytes]:
        """``docker save`` as a tar stream."""

        def open_stream(api: Any) -> tuple[Iterator[bytes], Any]:
            raw = api.get_image(name, chunk_size=1 << 20)
            return raw, raw

        async for chunk in self._stream(open_stream):
            yield chunk

    async def load_image(self, chunks: AsyncIterator[bytes]) -> builtins.list[str]:
        """``docker load`` of a tar stream; the loaded tags (or IDs for untagged images)."""
        loop = asyncio.get_running_loop()

        def run(api: Any) -> builtins.list[dict[str, Any]]:
            messages = list(api.load_image(blocking_chunks(chunks, loop)))
            for m in messages:
                if "error" in m:
                    raise EngineError(f"docker load failed: {m['error']}")
            return messages

        return docker_spec.loaded_images(await self._call(run))

    async def image(self, name: str) -> ImageInfo | None:
        """The image by name or ID, or None."""
        try:
            raw = await self._call(lambda api: api.inspect_image(name))
        except NotFoundError:
            return None
        return docker_spec.image_info(raw)

    async def images(
        self, labels: Mapping[str, str | None] | None = None
    ) -> builtins.list[ImageInfo]:
        """Images whose labels include ``labels`` (a None value: the key with any value).
        Not in the Engine protocol; used by ``images:list``."""
        filters = {"label": [k if v is None else f"{k}={v}" for k, v in (labels or {}).items()]}

        def run(api: Any) -> builtins.list[dict[str, Any]]:
            return [api.inspect_image(i["Id"]) for i in api.images(filters=filters)]

        return [docker_spec.image_info(raw) for raw in await self._call(run)]

    async def tag_image(self, image: str, repository: str, tag: str) -> None:
        """Tag an image (moving the tag if it exists)."""
        await self._call(lambda api: api.tag(image, repository, tag, force=True))

    async def remove_image(self, name: str, *, force: bool = False) -> None:
        """Remove an image; a missing one is fine."""
        with contextlib.suppress(NotFoundError):
            await self._call(lambda api: api.remove_image(name, force=force))

    async def remove_volume(self, name: str) -> None:
        """Remove a named volume; a missing one is fine."""
        with contextlib.suppress(NotFoundError):
            await self._call(lambda api: api.remove_volume(name))

    async def close(self) -> None:
        """Release the client and the thread pool."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, api.close)
        self._pool.shutdown(wait=False)


class _BuildLines:
    """Build output arrives as ``{"stream": text}`` pieces not aligned to lines; this yields
    whole non-blank lines."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, message: Mapping[str, Any]) -> builtins.list[str]:
        text = message.get("stream") or ""
        if not text and message.get("status"):
            text = f"{message['status']}\n"
        *lines, self.pending = (self.pending + str(text)).split("\n")
        return [line.rstrip("\r") for line in lines if line.strip()]

    def flush(self) -> builtins.list[str]:
        rest, self.pending = self.pending, ""
        return [rest] if rest.strip() else []


def _conforms(engine: DockerEngine) -> Engine:
    return engine  # mypy checks DockerEngine against the Engine protocol here
