"""Upstream downloads, single-flight: one :class:`Download` per cache key however many clients
ask. A download runs in its own task (a client going away does not stop it), writes to a temp
file that late clients read as it grows, checks length and hashes, then commits to storage.

Clients never get the last byte of a body before it is verified and committed: a download
that fails (truncated, wrong hash, stalled, reset) leaves every client with a broken response,
never with a complete-looking wrong one. This module is the one place that maps aiohttp's
client exceptions to :class:`UpstreamError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import yarl

from shipmate.cache import debian, mirrors
from shipmate.cache.packages import IndexParser
from shipmate.cache.policy import (
    Allowlist,
    Kind,
    Refused,
    conditional_headers,
    hash_from_path,
    parse_origin,
)
from shipmate.cache.routes import Rewrite, Target, check_allowed
from shipmate.cache.stats import Stats
from shipmate.cache.storage import Entry, Storage
from shipmate.errors import ShipmateError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "shipmate-cache/0.1"


class UpstreamError(ShipmateError):
    """An upstream download failed (refused redirect, truncation, bad hash, timeout, reset)."""

    status = 502
    code = "cache_upstream"


class State(enum.Enum):
    """Where a download is."""

    STARTING = "starting"  # waiting for upstream's status line
    STREAMING = "streaming"  # body arriving in ``tmp``
    DONE = "done"  # verified and committed
    NOT_MODIFIED = "not_modified"  # revalidation: upstream said 304, cached copy refreshed
    STALE = "stale"  # revalidation failed upstream: the cached copy is served as is
    UPSTREAM_ERROR = "upstream_error"  # upstream answered an error status (relayed, not cached)
    FAILED = "failed"  # the download broke


class Download:
    """One download in progress, shared by every client asking for the same key."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.state = State.STARTING
        self.content_type = "application/octet-stream"
        self.total: int | None = None
        self.written = 0
        self.tmp: Path | None = None
        self.read_fd = -1  # readers dup() it: valid while the download task runs
        self.error = ""
        self.error_status = 502
        self.error_body = b""
        self._waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def available(self) -> int:
        """Bytes a reader may send: all once committed, else all but the last (held back until
        the body is verified, so a failed download never looks complete to a client)."""
        return self.written if self.state is State.DONE else max(0, self.written - 1)

    def notify(self, state: State | None = None) -> None:
        """Wake every reader (optionally after moving to ``state``)."""
        if state is not None:
            self.state = state
        waiter, self._waiter = self._waiter, asyncio.get_running_loop().create_future()
        waiter.set_result(None)

    async def changed(self) -> None:
        """Wait for the next :meth:`notify`."""
        await asyncio.shield(self._waiter)

    async def started(self) -> None:
        """Wait until upstream has answered (or the download failed)."""
        while self.state is State.STARTING:
            await self.changed()

    async def finished(self) -> None:
        """Wait until the download is over, one way or another."""
        while self.state in (State.STARTING, State.STREAMING):
            await self.changed()


@contextlib.contextmanager
def map_upstream_errors(url: str) -> Iterator[None]:
    """The one place aiohttp's client exceptions become :class:`UpstreamError`."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamError(f"upstream stalled: {url}", hint="raise cache_upstream_timeout "
                            "or check the mirror") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(f"upstream failed: {url}: {type(exc).__name__}: {exc}",
                            hint="check the mirror; the next request retries") from exc
    except Refused as exc:
        raise UpstreamError(f"upstream redirect refused: {exc.message}") from exc


class Fetcher:
    """Starts and tracks downloads."""

    def __init__(self, storage: Storage, stats: Stats, allowlist: Allowlist,
                 timeout: float) -> None:
        self.storage = storage
        self.stats = stats
        self.allowlist = allowlist
        self.timeout = timeout
        self.downloads: dict[str, Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._index_tasks: set[asyncio.Task[int]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the upstream HTTP client."""
        self._session = aiohttp.ClientSession(
            auto_decompress=False, trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                          sock_read=self.timeout),
            connector=aiohttp.TCPConnector(limit=64, limit_per_host=16),
        )

    async def stop(self) -> None:
        """Cancel downloads and index parsing; close the client."""
        for task in [*self._tasks, *self._index_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._index_tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def active_temp_files(self) -> set[Path]:
        """Temp files of downloads in progress (``gc`` leaves them alone)."""
        return {d.tmp for d in self.downloads.values() if d.tmp is not None}

    def fetch(self, target: Target, cached: Entry | None = None) -> Download:
        """The download of ``target``: the one in progress, or a new one (a conditional one
        when ``cached`` is given)."""
        dl = self.downloads.get(target.key)
        if dl is None:
            dl = self.downloads[target.key] = Download(target)
            task = asyncio.create_task(self._run(dl, cached))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return dl

    async def _run(self, dl: Download, cached: Entry | None) -> None:
        self.stats.of(dl.target.fmt).upstream_fetches += 1
        try:
            with map_upstream_errors(dl.target.url):
                async with self._open(dl.target, cached) as resp:
                    await self._receive(dl, resp, cached)
        except UpstreamError as exc:
            self._fail(dl, exc.message, cached)
        except asyncio.CancelledError:
            self._fail(dl, "cache shutting down", None)
            raise
        finally:
            if self.downloads.get(dl.target.key) is dl:
                del self.downloads[dl.target.key]
            if dl.state is not State.DONE and dl.tmp is not None:
                dl.tmp.unlink(missing_ok=True)
            if dl.read_fd >= 0:
                os.close(dl.read_fd)
                dl.read_fd = -1

    def _fail(self, dl: Download, message: str, cached: Entry | None) -> None:
        log.warning("download failed: %s", message)
        dl.error = message
        if cached is not None and dl.state is State.STARTING:
            dl.notify(State.STALE)  # serve what we have rather than nothing
        else:
            dl.notify(State.FAILED)

    @contextlib.asynccontextmanager
    async def _open(self, target: Target, cached: Entry | None
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET upstream, following redirects only to allowlisted origins."""
        assert self._session is not None, "Fetcher.start() first"
        headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        if target.accept:
            headers["Accept"] = target.accept
        if cached is not None:
            headers.update(conditional_headers(cached.etag, cached.last_modified))
        url = target.url
        for _ in range(MAX_REDIRECTS + 1):
            resp = await self._session.get(yarl.URL(url, encoded=True), headers=headers,
                                           allow_redirects=False)
            location = resp.headers.get("Location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                resp.release()
                url = self._redirect(url, location)
                continue
            try:
                yield resp
            finally:
                resp.release()
            return
        raise UpstreamError(f"too many redirects: {target.url}")

    def _redirect(self, url: str, location: str) -> str:
        origin, path = parse_origin(urljoin(url, location))
        check_allowed(origin, self.allowlist)  # redirects get the same allowlist check
        return origin.url(path)

    async def _receive(self, dl: Download, resp: aiohttp.ClientResponse,
                       cached: Entry | None) -> None:
        if resp.status == 304 and cached is not None:
            self.storage.refreshed(cached.key, time.time())
            dl.notify(State.NOT_MODIFIED)
            return
        if resp.status != 200:
            if cached is not None and resp.status >= 500:
                raise UpstreamError(f"upstream answered {resp.status} on revalidation")
            dl.error_status = resp.status
            dl.error_body = await resp.content.read(64 * 1024)
            dl.content_type = resp.headers.get("Content-Type", "text/plain")
            dl.error = f"upstream answered {resp.status}"
            dl.notify(State.UPSTREAM_ERROR)  # relayed to clients, never cached
            return
        dl.content_type = resp.headers.get("Content-Type", dl.content_type)
        dl.total = resp.content_length
        fd, dl.tmp = self.storage.new_temp()
        dl.read_fd = os.open(dl.tmp, os.O_RDONLY)
        kind = debian.index_kind(dl.target.url) if dl.target.fmt == "apt" else None
        parser = self._start_parser(dl, kind) if kind is not None else None
        try:
            hashers, verified = await self._body(dl, resp, fd, parser)
            entry = self._entry(dl, resp, hashers)
            await self._learn_hints(dl.target, dl.tmp)
        except BaseException:
            os.close(fd)
            if parser is not None:
                parser.done(False)
            raise
        if parser is not None:
            # the hashes of an index checked against its Release become hints; an index no
            # Release vouched for teaches nothing (it could poison the cache)
            parser.done(verified)
        # finish_file closes fd whatever happens
        await asyncio.to_thread(self.storage.finish_file, fd, dl.tmp, entry)
        self.storage.record(entry)
        self.downloads.pop(dl.target.key, None)
        dl.notify(State.DONE)

    def _start_parser(self, dl: Download, kind: debian.Index) -> IndexParser:
        parser = IndexParser(self.storage, dl.target.url, dl.read_fd, kind)
        self._index_tasks.add(parser.task)
        parser.task.add_done_callback(self._index_tasks.discard)
        return parser

    async def _body(self, dl: Download, resp: aiohttp.ClientResponse, fd: int,
                    parser: IndexParser | None) -> tuple[dict[str, hashlib._Hash], bool]:
        """Stream the body into ``fd``; returns hashers (sha256, plus the expected algo) and
        whether the body was checked against a hash known beforehand."""
        # no waiting here for Packages or Sources indexes being parsed: only at the end
        expected = hash_from_path(dl.target.path) or self.storage.hint(dl.target.url)
        hashers = {"sha256": hashlib.sha256()}
        if expected and expected[0] not in hashers:
            hashers[expected[0]] = hashlib.new(expected[0])
        counters = self.stats.of(dl.target.fmt)
        dl.notify(State.STREAMING)
        async for chunk in resp.content.iter_chunked(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            for h in hashers.values():
                h.update(chunk)
            dl.written += len(chunk)
            counters.bytes_from_upstream += len(chunk)
            if parser is not None:
                parser.grow(dl.written)
            dl.notify()
        if dl.total is not None and dl.written != dl.total:
            raise UpstreamError(f"truncated: {dl.written} of {dl.total} bytes: {dl.target.url}")
        expected = await self._expected_hash(dl.target)  # an index may have arrived
        if expected and expected[0] not in hashers:
            hashers[expected[0]] = await asyncio.to_thread(_file_hash, fd, expected[0])
        if expected and hashers[expected[0]].hexdigest() != expected[1]:
            self.stats.verify_failures += 1
            raise UpstreamError(f"{expected[0]} mismatch (expected {expected[1]}): "
                                f"{dl.target.url}")
        self.stats.verified += expected is not None
        return hashers, expected is not None

    async def _expected_hash(self, target: Target) -> tuple[str, str] | None:
        from_path = hash_from_path(target.path)
        if from_path:
            return from_path
        if target.kind is Kind.IMMUTABLE and target.fmt == "apt" and self._index_tasks:
            # a Packages or Sources index being parsed may promise this file's hash
            await asyncio.wait(list(self._index_tasks), timeout=60)
        return self.storage.hint(target.url)  # for an index: what its Release promised

    def _entry(self, dl: Download, resp: aiohttp.ClientResponse,
               hashers: dict[str, hashlib._Hash]) -> Entry:
        now = time.time()
        t = dl.target
        return Entry(t.key, t.url, t.fmt, t.kind.value, dl.written, hashers["sha256"].hexdigest(),
                     dl.content_type, resp.headers.get("ETag"), resp.headers.get("Last-Modified"),
                     now, now)

    async def _learn_hints(self, t: Target, tmp: Path) -> None:
        """Hashes an index promises, remembered before the index reaches any client."""
        if t.rewrite is Rewrite.NONE and not debian.is_release(t.url):
            return
        body = await asyncio.to_thread(tmp.read_bytes)
        if t.rewrite is Rewrite.NONE:  # a Release replaces what the suite's last one promised
            hints = debian.release_hints(body.decode("utf-8", "replace"), t.url)
            await asyncio.to_thread(self.storage.replace_hints,
                                    debian.release_scope(hints, t.url), hints)
            return
        try:
            if t.rewrite is Rewrite.PYPI_HTML:
                hints = mirrors.pypi_html_hints(body, t.url)
            elif t.rewrite is Rewrite.PYPI_JSON:
                hints = mirrors.pypi_json_hints(body, t.url)
            else:
                hints = await asyncio.to_thread(mirrors.npm_hints, body)
        except ValueError as exc:
            raise UpstreamError(f"unreadable index {t.url}: {exc}") from exc
        await asyncio.to_thread(self.storage.add_hints, hints)


def _file_hash(fd: int, algo: str) -> hashlib._Hash:
    """Hash what was written to ``fd`` (when the expected algorithm became known late)."""
    h = hashlib.new(algo)
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)
    return h
