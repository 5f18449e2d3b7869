"""Connections to etcd members: endpoint failover, gRPC keepalive, and the one place where
gRPC errors become :class:`~shipmate.errors.StoreError`.

One gRPC channel per endpoint (HTTP/2, so every request and watch to a member shares one TCP
connection). Requests go to the *current* endpoint; when it cannot be reached the next one is
tried, and the client stays there. A request is retried on another member only when that cannot
apply it twice: the member was never reached, or etcd said it had no leader (so it refused the
request before proposing it). Puts, deletes and lease refreshes are retried after any
connection failure too, since applying them again leaves the same state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aetcd import rpc
from grpc import aio as grpc_aio  # type: ignore[import-untyped]
from grpc import ssl_channel_credentials as grpc_ssl_credentials

from shipmate.clock import within
from shipmate.errors import ConfigError, LeaseNotFoundError, StoreError

T = TypeVar("T")

#: Sent with every request and watch: a member cut off from the leader refuses at once (watches
#: are cancelled) instead of hanging, so the client moves on to a member that has a leader.
REQUIRE_LEADER = (("hasleader", "true"),)

# etcd's default server policy refuses pings more often than every 5 s, and pings without an
# active stream; so ping every 10 s only while a watch or request is open. A dead peer is then
# noticed within ~15 s even when no TCP reset ever arrives.
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # grpcio 1.85 ignores keepalive_timeout and waits for a ping ack this long instead
    # (default 60 s; grpc/grpc#39239), so set both.
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    # A restarted member must be found quickly: gRPC's default reconnect backoff grows to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.max_receive_message_length", 256 * 2**20),
    ("grpc.enable_retries", 0),  # retries are decided here, knowing which requests are safe
)

_NO_METADATA = grpc_aio.Metadata()
#: What ``read()`` returns once a stream has ended cleanly.
STREAM_END: Any = grpc_aio.EOF
_NOT_APPLIED = ("etcdserver: no leader", "etcdserver: not capable", "failed to connect",
                # a member that joined as a learner and is not promoted yet refuses everything
                "not supported for learner")


class Retry(enum.Enum):
    """How a request may be retried on another member after a failure."""

    SAFE = "safe"  # reads: always
    IDEMPOTENT = "idempotent"  # put, delete, keepalive: applying twice leaves the same state
    ONCE = "once"  # txn, grant: only when the member surely did not apply it


@dataclasses.dataclass(frozen=True)
class Tls:
    """Client TLS for etcd: the CA that signed the members' certificates, and this client's
    certificate and key (PEM), for members started with ``--client-cert-auth``."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, ca: str, cert: str, key: str) -> Tls:
        """Read the three PEM files; a missing one is a ConfigError."""
        try:
            with open(ca, "rb") as a, open(cert, "rb") as c, open(key, "rb") as k:
                return cls(a.read(), c.read(), k.read())
        except OSError as exc:
            raise ConfigError(f"cannot read the etcd client certificate: {exc}",
                              hint="see `shipmate cluster init` (docs/cluster.md)") from None

    def credentials(self) -> Any:
        """gRPC channel credentials verifying the member against the CA, presenting ours."""
        return grpc_ssl_credentials(root_certificates=self.ca, private_key=self.key,
                                    certificate_chain=self.cert)


def parse_endpoint(text: str, *, tls: bool = False) -> str:
    """``http://host:port``, ``https://host:port`` (with ``tls``), ``host:port`` or ``host``
    -> a gRPC target ``host:port``."""
    raw = text.strip()
    scheme = "https" if tls else "http"
    url = urlsplit(raw if "://" in raw else f"{scheme}://{raw}")
    if url.scheme != scheme or not url.hostname or url.path not in ("", "/"):
        raise ConfigError(
            f"bad etcd endpoint {text!r}",
            hint=f"give endpoints as {scheme}://HOST:PORT[,{scheme}://HOST2:PORT]"
                 + (" (https needs the cluster's certificates: cluster_tls_dir)"
                    if not tls and url.scheme == "https" else ""),
        )
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{host}:{url.port or 2379}"


@dataclasses.dataclass
class Member:
    """One endpoint, its channel and the stubs bound to it."""

    endpoint: str
    channel: Any
    kv: Any
    watch: Any
    lease: Any

    @classmethod
    def open(cls, endpoint: str, tls: Tls | None = None) -> Member:
        """Create the channel (it connects lazily); over TLS when ``tls`` is given."""
        channel = (rpc.secure_channel(endpoint, tls.credentials(), options=CHANNEL_OPTIONS)
                   if tls is not None else rpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS))
        return cls(endpoint, channel, rpc.KVStub(channel), rpc.WatchStub(channel),
                   rpc.LeaseStub(channel))

    async def ready(self, wait: float) -> bool:
        """True once connected; False at once when the last attempt failed, or after ``wait``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        state = self.channel.get_state(try_to_connect=True)
        while state.name != "READY":
            left = end - loop.time()
            if state.name in ("TRANSIENT_FAILURE", "SHUTDOWN") or left <= 0:
                return False
            try:
                await within(self.channel.wait_for_state_change(state), left)
            except TimeoutError:
                return False
            state = self.channel.get_state(try_to_connect=True)
        return True


class Connection:
    """Every member of one etcd cluster, with failover between them."""

    def __init__(self, endpoints: list[str], timeout: float, tls: Tls | None = None) -> None:
        if not endpoints:
            raise ConfigError("no etcd endpoint given", hint="set SHIPMATE_ETCD_ENDPOINTS")
        self.tls = tls
        self.endpoints = [parse_endpoint(e, tls=tls is not None) for e in endpoints]
        self.timeout = timeout
        self._members = [Member.open(e, tls) for e in self.endpoints]
        self._current = 0
        self._retired: list[Member] = []

    def set_endpoints(self, endpoints: list[str]) -> bool:
        """Follow the cluster's membership: talk to ``endpoints`` from now on (members seen
        before keep their channels; the current one stays current if it is still listed).
        Returns True when the list changed."""
        targets = list(dict.fromkeys(parse_endpoint(e, tls=self.tls is not None)
                                     for e in endpoints))
        if not targets or targets == self.endpoints:
            return False
        old = {m.endpoint: m for m in self._members}
        current = self.current.endpoint
        self._members = [old.pop(t) if t in old else Member.open(t, self.tls) for t in targets]
        self._retired.extend(old.values())  # closed with the connection: calls may be open
        self.endpoints = targets
        self._current = targets.index(current) if current in targets else 0
        return True

    @property
    def current(self) -> Member:
        """The member requests go to now."""
        return self._members[self._current]

    def failed(self, member: Member) -> None:
        """``member`` failed: move on to the next one (unless someone already did)."""
        if self._members[self._current] is member:
            self._current = (self._current + 1) % len(self._members)

    async def pick(self, deadline: float) -> Member:
        """A connected member, trying each in turn until ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        pause = 0.05
        while True:
            for _ in self._members:
                member = self.current
                left = deadline - loop.time()
                if left <= 0:
                    raise self.unreachable()
                # Give a fresh connection a moment; one that just failed is skipped at once.
                if await member.ready(min(left, max(0.5, self.timeout / len(self._members)))):
                    return member
                self.failed(member)
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, 0.5)

    async def call(self, fn: Callable[[Member, float], Awaitable[T]], retry: Retry) -> T:
        """Run ``fn(member, seconds_left)`` on a connected member, failing over per ``retry``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # With several members, one attempt gets part of the budget: a member whose leader just
        # died holds a write until its own timeout, while another member could answer at once.
        attempt = self.timeout if len(self._members) == 1 else max(1.0, self.timeout / 2)
        while True:
            member = await self.pick(deadline)
            left = deadline - loop.time()
            try:
                return await fn(member, max(0.01, min(left, attempt)))
            except (rpc.RpcError, rpc.BaseError) as exc:
                if not retryable(exc, retry) or loop.time() >= deadline:
                    raise self.translate(exc) from exc
                self.failed(member)

    def unreachable(self) -> StoreError:
        """The error for 'no member answered in time'."""
        return StoreError(
            f"no etcd member answered within {self.timeout:g}s",
            hint=self._hint(),
        )

    def translate(self, exc: BaseException) -> StoreError:
        """THE place where gRPC errors become Shipmate errors."""
        if not isinstance(exc, rpc.AioRpcError):
            return StoreError(f"etcd client failed: {exc!r}", hint=self._hint())
        code, details = exc.code().name, exc.details() or ""
        if code == "NOT_FOUND" and "lease" in details:
            return LeaseNotFoundError(
                f"etcd: {details}", hint="the lease expired or was revoked; grant a new one"
            )
        if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
            may_apply = "" if _not_applied(details) else " (a write may or may not have applied)"
            return StoreError(f"etcd request failed: {code} {details}{may_apply}",
                              hint=self._hint())
        return StoreError(f"etcd refused the request: {code} {details}",
                          hint="this is likely a bug in Shipmate; please report it")

    def _hint(self) -> str:
        return (
            f"check that etcd runs and answers at {', '.join(self.endpoints)} "
            "(SHIPMATE_ETCD_ENDPOINTS; `etcdctl --endpoints=... endpoint health`)"
        )

    async def close(self) -> None:
        """Close every channel."""
        for member in [*self._members, *self._retired]:
            await member.channel.close()


def _not_applied(details: str) -> bool:
    return any(marker in details for marker in _NOT_APPLIED)


def retryable(exc: Any, retry: Retry) -> bool:
    """Whether a failed request may be sent again to another member."""
    if not isinstance(exc, rpc.AioRpcError):
        return False
    code = exc.code().name
    if code == "DEADLINE_EXCEEDED":  # this attempt's share of the time ran out
        return retry is not Retry.ONCE
    if code != "UNAVAILABLE":
        return False  # etcd answered with a definite error
    return retry is not Retry.ONCE or _not_applied(exc.details() or "")


async def send_first(call: Any, request: Any, timeout: float) -> None:
    """Write the opening ``request`` of a stream-stream ``call`` used reader/writer style.

    Streams are never given a request iterator: gRPC would run a task of its own to consume
    it, and when the call fails before its headers are sent (a partition), ``cancel()`` no
    longer reaches that task; it stays pending until collected ("Task was destroyed but it is
    pending!" in the daemon log). Writing here keeps every wait in the caller's own task. A
    call that ended first says why on the next ``read()``; one that neither ended nor sent in
    ``timeout`` is cancelled and reported as a deadline, so the caller fails over.
    """
    try:
        await within(call.write(request), timeout)
    except asyncio.InvalidStateError:
        return  # already finished: read() raises its status
    except TimeoutError:
        call.cancel()
        raise rpc.AioRpcError(rpc.StatusCode.DEADLINE_EXCEEDED, _NO_METADATA, _NO_METADATA,
                              "no answer from the etcd member") from None
