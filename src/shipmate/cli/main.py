"""Entry point of the ``shipmate`` command. ``asyncio.run`` lives here, at the edge.

A command is a thin client: at start-up it loads the command modules, which import what
their commands need (aiohttp, docker-py, YAML, the manifest and cluster stacks...) inside
those commands, and builds the parser of the one command named. ``--version`` loads no
command module. ``tests/unit/core/test_cli_imports.py`` holds this; ``bench/cli.py`` times it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipmate import __version__
from shipmate.cli import output
from shipmate.cli.registry import COMMANDS, CommandDef, Context
from shipmate.errors import ShipmateError

# Each module registers its commands on import. Add new command groups here.
COMMAND_MODULES = (
    "shipmate.cli.daemon",
    "shipmate.cli.images",
    "shipmate.cli.fleet",
    "shipmate.cli.cache",
    "shipmate.cli.manifest",
    "shipmate.cli.paas",
    "shipmate.cli.certs",
    "shipmate.cli.storage",
    "shipmate.cli.services",
    "shipmate.cli.dokku",
    "shipmate.cli.cron",
    "shipmate.cli.sshkeys",
    "shipmate.cli.acl",
    "shipmate.cli.cluster",
    "shipmate.cli.events",
    "shipmate.cli.users",
    "shipmate.cli.backup",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise


def _add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                 groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]],
                 cmd: CommandDef) -> None:
    words = cmd.name.split(" ")
    target = subparsers
    for word in words[:-1]:
        if word not in groups:
            group = subparsers.add_parser(word, help=f"{word} commands")
            groups[word] = group.add_subparsers(dest=f"{word}_command", metavar="COMMAND")
            groups[word].required = True
        target = groups[word]
    p = target.add_parser(words[-1], help=cmd.help, description=cmd.help)
    for names, kwargs in cmd.arguments:
        p.add_argument(*names, **kwargs)
    if not any("--format" in names for names, _ in cmd.arguments):
        p.add_argument("--format", choices=("text", "json"), default=None, help="output format")
    p.set_defaults(_command=cmd)


def _version_parser(**kwargs: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipmate", description="Shipmate: git-push deploys, a cluster scheduler, a router "
        "and a package cache for your own servers.", **kwargs)
    parser.add_argument("--version", action="version", version=f"shipmate {__version__}")
    return parser


_VALUE_OPTIONS = ("--format", "--state-dir", "--cluster")  # global options with a value


def _split(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The global options before the command, and the rest (the command's words first)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _VALUE_OPTIONS else 1
    return list(args[:i]), list(args[i:])


def _named_command(rest: Sequence[str]) -> str | None:
    """The registered command the words name (``apps:list``, ``fleet list-units``), if any."""
    for n in (1, 2):
        name = " ".join(rest[:n])
        if len(rest) >= n and name in COMMANDS:
            return name
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with every registered command, or with command ``only`` alone (enough to
    parse a command line that names it, at a fraction of the cost)."""
    _load_commands()
    parser = _version_parser()
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--format", dest="global_format", choices=("text", "json"),
                        default="text", help="output format")
    parser.add_argument("--state-dir", help="state directory (SHIPMATE_STATE_DIR)")
    parser.add_argument("--cluster", help="talk to a machine of a local cluster (cluster up)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for cmd in sorted(COMMANDS.values(), key=lambda c: c.name):
        if only is None or cmd.name == only:
            _add_command(subparsers, groups, cmd)
    return parser


def parse(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse a command line. ``--version`` before the command answers (and exits) before
    the command modules load; ``shipmate run APP python --version`` still runs a command."""
    leading, rest = _split(argv)
    if "--version" in leading:
        _version_parser(add_help=False).parse_known_args(["--version"])
    _load_commands()
    parser = build_parser(_named_command(rest))
    return parser, parser.parse_args(argv)


def _context(ns: argparse.Namespace) -> Context:
    from shipmate import config  # here: --version needs no settings

    overrides: dict[str, Any] = {}
    if ns.state_dir:
        overrides["state_dir"] = Path(ns.state_dir)
    cfg = config.load(**overrides)
    target = ns.cluster or cfg.cluster
    if target and not ns._command.name.startswith("cluster "):
        # Talk to that node's daemon: its socket is bind-mounted on this host.
        from shipmate.cluster.remote import node_socket

        cfg = cfg.with_overrides(socket=node_socket(cfg.state_dir, target))
    if cfg.debug:
        ns.debug = True
    fmt = getattr(ns, "format", None) or ns.global_format
    return Context(config=cfg, debug=ns.debug, format=fmt)


def _check_access(ctx: Context, ns: argparse.Namespace) -> None:
    """Over SSH, check a non-admin key's command again on what this parser made of the line
    (the SSH server checked the line itself: ``paas/aclpolicy.py``), so that a line the two
    read differently is refused."""
    granted = ctx.granted
    if granted is not None:
        import os

        from shipmate.paas.aclpolicy import check_parsed
        from shipmate.paas.sshpolicy import REMOTE_ENV

        app = getattr(ns, "app", None)
        check_parsed(ns._command.name, app if isinstance(app, str) else None,
                     os.environ.get(REMOTE_ENV, "-"), granted)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit status 0 on success, 1 on a reported error."""
    parser, ns = parse(sys.argv[1:] if argv is None else argv)
    if not getattr(ns, "_command", None):
        parser.print_help()
        return 0
    debug = ns.debug
    try:
        ctx = _context(ns)
        debug = ctx.debug
        _check_access(ctx, ns)
        import asyncio  # here, not at the top: --version exits before it is needed

        result = asyncio.run(ns._command.func(ctx, ns))
        return int(result or 0)
    except ShipmateError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        output.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except Exception as exc:  # a bug: say so briefly unless --debug
        if debug:
            import traceback

            traceback.print_exc()
        output.error(f"internal error: {type(exc).__name__}: {exc}")
        output.error("run again with --debug for the traceback, and please report it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
