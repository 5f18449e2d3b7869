"""The one error hierarchy.

Every error a user can see is a :class:`ShipmateError`. Each carries a message (what was wrong),
an optional hint (what to do about it) and an HTTP status the daemon's API uses when the error
crosses it. Lower-level exceptions (docker-py, sqlite3, aiohttp, grpc) are mapped to these in
exactly one place per subsystem, in the manner of httpx's ``map_httpcore_exceptions``.
"""

from __future__ import annotations


class ShipmateError(Exception):
    """Root of every error Shipmate reports to a user."""

    status: int = 500
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"

    def to_dict(self) -> dict[str, str | None]:
        """Serialise for the daemon API; :func:`from_dict` reverses it."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ValidationError(ShipmateError):
    """Input (a name, a unit file, a manifest, a setting) was refused before anything changed."""

    status = 400
    code = "invalid"


class NotFoundError(ShipmateError):
    """The thing asked for does not exist."""

    status = 404
    code = "not_found"


class ConflictError(ShipmateError):
    """The request conflicts with current state (exists already, locked, changed since)."""

    status = 409
    code = "conflict"


class ForbiddenError(ShipmateError):
    """The one asking may not do this (a non-admin SSH key, an app not granted to it)."""

    status = 403
    code = "forbidden"


class ConfigError(ValidationError):
    """A setting has a value of the wrong type or out of range."""

    code = "config"


class StoreError(ShipmateError):
    """The desired-state store failed or cannot be reached."""

    status = 503
    code = "store"


class CompactedError(StoreError):
    """A watch asked to resume from a revision that was compacted away."""

    status = 410
    code = "compacted"

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted (oldest kept: {compact_revision})",
            hint="re-read the current state with a range request, then watch from its revision",
        )
        self.requested = requested
        self.compact_revision = compact_revision


class LeaseNotFoundError(StoreError):
    """A lease was revoked or expired."""

    status = 404
    code = "lease_not_found"


class EngineError(ShipmateError):
    """The Docker engine refused or failed a request."""

    status = 502
    code = "engine"


class EngineUnavailableError(EngineError):
    """No Docker engine answers at the configured address."""

    status = 503
    code = "engine_unavailable"


class DaemonUnavailableError(ShipmateError):
    """The CLI could not reach the local Shipmate daemon."""

    status = 503
    code = "daemon_unavailable"


_BY_CODE: dict[str, type[ShipmateError]] = {}


def _register(*classes: type[ShipmateError]) -> None:
    for cls in classes:
        _BY_CODE[cls.code] = cls


_register(
    ShipmateError, ValidationError, NotFoundError, ConflictError, ForbiddenError, ConfigError,
    StoreError,
    LeaseNotFoundError, EngineError, EngineUnavailableError, DaemonUnavailableError,
)


def from_dict(data: dict[str, object]) -> ShipmateError:
    """Rebuild an error sent by the daemon API (see :meth:`ShipmateError.to_dict`)."""
    cls = _BY_CODE.get(str(data.get("code", "error")), ShipmateError)
    hint = data.get("hint")
    err = ShipmateError.__new__(cls)
    ShipmateError.__init__(err, str(data.get("message", "")), hint=str(hint) if hint else None)
    return err


class RouterError(ShipmateError):
    """The router's nginx could not be started, reloaded or stopped."""

    status = 502
    code = "router"


_register(RouterError)


class EngineConflictError(EngineError, ConflictError):
    """The engine refused because of current state (a container name in use, an image in use)."""

    status = 409
    code = "engine_conflict"


_register(EngineConflictError)


class ClusterError(ShipmateError):
    """A local cluster (``shipmate cluster``) could not be built, started, changed or read."""

    status = 502
    code = "cluster"


_register(ClusterError)
