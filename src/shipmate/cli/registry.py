"""Command registry. Each ``cli/<group>.py`` module declares its commands with :func:`command`;
``cli/main.py`` imports the modules listed in ``COMMAND_MODULES`` and builds the parser.

A command function is ``async def f(ctx: Context, args: argparse.Namespace) -> int | None``.
It parses nothing itself, calls one function (usually on the daemon client) and renders.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipmate.config import Config
    from shipmate.httpapi.client import DaemonClient

CommandFunc = Callable[["Context", argparse.Namespace], Awaitable[int | None]]


@dataclasses.dataclass
class Context:
    """What a command gets: resolved settings and global flags."""

    config: Config
    debug: bool = False
    format: str = "text"

    @property
    def remote(self) -> bool:
        """True when an SSH key holder runs this command (through the daemon's SSH server):
        then files come on standard input only and no path given is ever opened."""
        import os

        from shipmate.paas.sshpolicy import is_remote

        return is_remote(os.environ)

    @property
    def granted(self) -> frozenset[str] | None:
        """The apps a non-admin SSH key may act on (set by the SSH server); None for an
        admin key or a local user, who act on every app."""
        if not self.remote:
            return None
        import os

        from shipmate.paas.aclpolicy import GRANTED_ENV, granted_from_env

        value = os.environ.get(GRANTED_ENV)
        return None if value is None else granted_from_env(value)

    def client(self) -> DaemonClient:
        """A client of the local daemon's API (see :mod:`shipmate.httpapi.client`)."""
        from shipmate.httpapi.client import DaemonClient

        return DaemonClient(self.config.socket)


@dataclasses.dataclass(frozen=True)
class CommandDef:
    """One registered command."""

    name: str
    help: str
    func: CommandFunc
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]


COMMANDS: dict[str, CommandDef] = {}


def arg(*names: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """An argparse argument declaration for :func:`command`."""
    return names, kwargs


def command(
    name: str, help: str, *arguments: tuple[tuple[str, ...], dict[str, Any]]
) -> Callable[[CommandFunc], CommandFunc]:
    """Register ``func`` as the command ``name`` (e.g. ``apps:create`` or ``fleet list-units``)."""

    def deco(func: CommandFunc) -> CommandFunc:
        if name in COMMANDS:
            raise RuntimeError(f"command {name} registered twice")
        COMMANDS[name] = CommandDef(name, help, func, tuple(arguments))
        return func

    return deco
