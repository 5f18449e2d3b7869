"""What the command modules share: the ``APP`` and ``--format`` arguments, the app name check,
streaming a daemon answer line by line, and Dokku's ``:report APP [--flag]`` helpers."""

from __future__ import annotations

import argparse
from typing import Any

from shipmate.cli.registry import Context, arg
from shipmate.errors import ValidationError
from shipmate.spec.names import validate_app_name

APP = arg("app", help="app name")
FMT = arg("--format", choices=("text", "json"), default=None, help="output format")


def app_of(args: argparse.Namespace) -> str:
    """``args.app``, checked as an app name before it reaches a path or the daemon."""
    return validate_app_name(args.app)


async def stream_out(ctx: Context, method: str, path: str, body: Any = None) -> int:
    """Print a streamed daemon answer (a deploy's progress) line by line as it comes."""
    async for line in ctx.client().stream(method, path, json_body=body):
        print(line, flush=True)
    return 0


def single_value(flag: str | None, items: list[tuple[str, str, Any]]) -> bool:
    """Dokku's ``:report APP --flag``: print one value and stop."""
    if not flag:
        return False
    for key, _, value in items:
        if key == flag:
            print(as_text(value))
            return True
    raise ValidationError(f"Invalid flag passed, valid flags: {', '.join(k for k, _, _ in items)}")


def as_text(value: Any) -> str:
    """A report value as Dokku prints it (``true``/``false`` for flags)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flag_args(flags: list[str]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``--app-locked`` and friends as options (argparse would refuse them as a positional
    value): each one stores its own name in ``args.flag``."""
    return [arg(flag, dest="flag", action="store_const", const=flag, default=None,
                help=f"print only this value ({flag})") for flag in flags]
