"""What a key holder may run over SSH: one table, checked before anything runs (pure).

Rules (docs/security.md states them for users):

- Every CLI command is in :data:`COMMANDS`; a command missing from the table is refused over
  SSH, so a new command is local-only until someone decides otherwise here.
- Commands that name files on the server or manage the host (``plan``, ``apply``, ``cluster``,
  ``images:*``, ``cache gc``/``serve``, ``daemon``/``up``/``down``) are local-only.
- Over SSH a command that takes a file reads its *content* from standard input
  (``fleet submit NAME < unit``, ``ssh-keys:add NAME < key.pub``, ``import chef < recipe.rb``);
  an argument that could be a server path is refused before the command starts.
- ``enter`` is the one command that runs on a terminal: with ``ssh -t`` the SSH server gives
  it a pseudo-terminal (its standard input is then the client's keyboard), without one it
  runs on pipes like every other command (``ssh HOST enter APP web.1 ls``).
- Only ``--format`` of the global options is accepted (``--state-dir`` or ``--cluster`` would
  point the CLI elsewhere, ``--debug`` shows tracebacks); ``--help`` and ``--version`` are.
- What is logged of a command line has its values redacted (:func:`redact`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from shipmate.errors import ShipmateError, ValidationError

#: Set by the SSH server in the environment of the CLI it runs (the key's name): the CLI then
#: reads files from standard input only and never opens a path it was given.
REMOTE_ENV = "SHIPMATE_SSH_KEY"
#: The only user name the SSH server accepts (Dokku's is ``dokku``).
SSH_USER = "shipmate"
_GLOBAL_OK = frozenset({"--help", "-h", "--version"})
# Options that take a value; every one of a command acting on an app is here
# (tests/unit/paas/test_aclpolicy.py holds it): positionals() must find the app where the
# CLI's parser will.
_VALUE_OPTIONS = frozenset({"--format", "--name", "--fields", "--block-attempts", "--lines",
                            "-n", "--num", "-p", "--ps", "--app", "--process-type", "--memory",
                            "--cpu", "--alias", "--image-version", "--chown", "--service", "-s",
                            "-o", "--out", "--timeout", "--port", "--bind", "--nodes",
                            "--subnet", "--env", "--image", "--apt-proxy", "--mirror",
                            "--suite"})
Check = Callable[[str, Sequence[str]], None]


@dataclasses.dataclass(frozen=True)
class Remote:
    """How one command may be used over SSH."""

    allowed: bool
    #: What the command reads from standard input over SSH ("" when nothing).
    stdin: str = ""
    #: Extra checks of the arguments after the command's name (raise ShipmateError).
    check: Check | None = None
    #: Runs on a pseudo-terminal when the client asks for one (``ssh -t``).
    terminal: bool = False


def is_remote(environ: Mapping[str, str]) -> bool:
    """True when this CLI runs for an SSH key holder (see :data:`REMOTE_ENV`)."""
    return bool(environ.get(REMOTE_ENV))


def positionals(args: Sequence[str]) -> list[str]:
    """The arguments that are not options or option values (``--format json`` skipped)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a.startswith("-") and a != "-":
            skip = "=" not in a and a in _VALUE_OPTIONS
        else:
            out.append(a)
    return out


def _no_paths(command: str, args: Sequence[str]) -> None:
    for a in args:
        if "/" in a:
            raise ValidationError(f"`{command}` over SSH takes unit names, not paths",
                                hint="send a unit file with `fleet submit NAME < FILE`")


def _one_name_stdin(what: str) -> Check:
    def check(command: str, args: Sequence[str]) -> None:
        names = positionals(args)
        usage = f"{command} NAME < {what}"
        if len(names) != 1 and not (len(names) == 2 and names[1] == "-"):
            raise ValidationError(f"over SSH, `{command}` takes one name and reads the "
                                f"{what} from standard input", hint=f"run `{usage}`")
        if "/" in names[0]:
            raise ValidationError(f"`{command}` over SSH does not read files on the server",
                                hint=f"run `{usage}`")
    return check


def _import_check(command: str, args: Sequence[str]) -> None:
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--format", "--name") and i + 1 < len(args):
            i += 2
        elif a == "-" or a.startswith(("--format=", "--name=")):
            i += 1
        else:
            raise ValidationError(f"over SSH, `{command}` reads from standard input and prints "
                                "the manifest (no file arguments, no -o)",
                                hint=f"run `{command} [--name NAME] < FILE > manifest.yaml`")


def _remote_names() -> Remote:
    return Remote(True, check=_no_paths)


LOCAL = Remote(False)
REMOTE = Remote(True)

#: Every CLI command and how it may be used over SSH (the one place this is declared).
COMMANDS: Mapping[str, Remote] = {
    # apps and their settings
    **dict.fromkeys(("apps:create", "apps:list", "apps:exists", "apps:destroy", "apps:lock",
                     "apps:unlock", "apps:report"), REMOTE),
    **dict.fromkeys(("config:set", "config:unset", "config:get", "config:show",
                     "config:keys", "config:export"), REMOTE),
    **dict.fromkeys(("domains:set-global", "domains:clear-global", "domains:add",
                     "domains:remove", "domains:report", "urls", "url"), REMOTE),
    **dict.fromkeys(("ps:scale", "ps:report", "ps:restart", "ps:stop", "ps:start", "releases",
                     "releases:rollback",
                     "checks:report", "checks:disable", "checks:enable", "checks:set", "logs",
                     "run"), REMOTE),
    # HTTPS: a certificate and key come as Dokku's tar on standard input
    "certs:add": Remote(True, stdin="cert-key.tar", check=_one_name_stdin("cert-key.tar")),
    **dict.fromkeys(("certs:generate", "certs:report", "certs:show", "certs:remove",
                     "certs:set", "letsencrypt:enable", "letsencrypt:disable",
                     "letsencrypt:list", "letsencrypt:revoke", "letsencrypt:set",
                     "letsencrypt:auto-renew", "letsencrypt:cron-job"), REMOTE),
    # storage: over SSH only directories of the storage root (docs/security.md)
    **dict.fromkeys(("storage:ensure-directory", "storage:mount", "storage:unmount",
                     "storage:list", "storage:report"), REMOTE),
    # services: dumps and statements come on standard input, dumps go to standard output
    **{f"{kind}:{verb}": REMOTE for kind in ("postgres", "redis") for verb in (
        "create", "link", "unlink", "info", "list", "restart", "destroy", "export",
        "backup-unschedule", "expose", "unexpose")},
    # backups name a directory on the server: local-only (docs/services.md)
    **{f"{kind}:{verb}": LOCAL for kind in ("postgres", "redis")
       for verb in ("backup", "backup-schedule")},
    **{f"{kind}:{verb}": Remote(True, stdin=what) for kind in ("postgres", "redis")
       for verb, what in (("import", "dump"), ("connect", "statements"))},
    # Dokku's everyday commands (shipmate.cli.dokku); an image tar comes on standard input.
    **dict.fromkeys(("resource:limit", "resource:reserve", "resource:limit-clear",
                     "resource:reserve-clear", "resource:report", "ps:rebuild", "apps:rename",
                     "apps:clone", "ports:set", "ports:add", "ports:remove", "ports:clear",
                     "ports:report", "ports:list", "git:from-image"), REMOTE),
    "git:load-image": Remote(True, stdin="image tar (docker save)"),
    # scheduled tasks (app.json cron entries)
    **dict.fromkeys(("cron:list", "cron:run", "cron:suspend", "cron:resume"), REMOTE),
    # a shell in a running container of this machine: the client's terminal with `ssh -t`
    "enter": Remote(True, stdin="the terminal (ssh -t), or the command's input",
                    terminal=True),
    "ssh-keys:add": Remote(True, stdin="public key", check=_one_name_stdin("key.pub")),
    **dict.fromkeys(("ssh-keys:list", "ssh-keys:remove"), REMOTE),
    # who may act on which app (admin keys only: paas/aclpolicy.py)
    **dict.fromkeys(("acl:add", "acl:remove", "acl:list"), REMOTE),
    # the cluster's units, by name; a unit file comes on standard input
    "fleet submit": Remote(True, stdin="unit file", check=_one_name_stdin("unit file")),
    **{f"fleet {verb}": _remote_names() for verb in (
        "list-machines", "list-units", "list-unit-files", "load", "start", "stop", "unload",
        "destroy", "cat", "status", "journal")},
    # translation is pure: text in, manifest YAML out
    "import chef": Remote(True, stdin="recipe", check=_import_check),
    "import puppet": Remote(True, stdin="manifest", check=_import_check),
    # read-only views of the daemon
    **dict.fromkeys(("status", "info", "cache stats", "events"), REMOTE),
    # dashboard users: managed by root on the machine only (docs/dashboard.md)
    **dict.fromkeys(("users:add", "users:list", "users:remove"), LOCAL),
    # backups name files on the server (archives hold every secret): local-only
    **dict.fromkeys(("backup create", "backup restore", "backup verify"), LOCAL),
    # the host itself: its files, its containers, its daemons
    **dict.fromkeys(("daemon", "up", "down", "plan", "apply", "images:bootstrap",
                     "images:list", "cache serve", "cache gc", "cluster up", "cluster down",
                     "cluster status", "cluster kill", "cluster start", "cluster partition",
                     "cluster heal", "cluster logs", "cluster init", "cluster join",
                     "cluster leave", "cluster remove", "cluster supervise", "cluster sign",
                     "cluster join-token", "cluster members"), LOCAL),
}
_GROUPS = frozenset(name.split(" ")[0] for name in COMMANDS if " " in name)


def command_name(argv: Sequence[str]) -> tuple[str, int]:
    """The command an argument list runs (``fleet submit``, ``apps:list``) and the index of
    its first argument, after the global options. Refuses global options other than
    ``--format``; ``("", i)`` for ``--help``/``--version`` or an empty line."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        option, eq, _ = argv[i].partition("=")
        if option in _GLOBAL_OK:
            return "", len(argv)
        if option != "--format":
            raise ValidationError(f"option {option} cannot be used over SSH",
                                hint="run the command on the machine itself")
        i += 1 if eq else 2
    if i >= len(argv):
        return "", i
    if argv[i] in _GROUPS and i + 1 < len(argv):
        return f"{argv[i]} {argv[i + 1]}", i + 2
    return argv[i], i + 1


def check_remote(argv: Sequence[str]) -> Remote:
    """Check a CLI command line received over SSH against :data:`COMMANDS`; returns how the
    command runs over SSH, or raises ShipmateError saying why it may not."""
    name, first = command_name(argv)
    if not name:
        return REMOTE
    remote = COMMANDS.get(name)
    if remote is None:
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise ValidationError(f"`{shown}` is not a command that can run over SSH",
                            hint="`help` lists the commands; docs/security.md says which run "
                                 "over SSH")
    if not remote.allowed:
        raise ValidationError(f"`{name}` can only be run on the machine itself",
                            hint="it reads or changes the host's own files and processes")
    if remote.check is not None:
        remote.check(name, argv[first:])
    return remote


_KEPT_BEFORE_COMMAND = {"run": 1, "enter": 2}


def redact(argv: Sequence[str]) -> str:
    """A command line as it may be logged: values of ``K=V`` words become ``K=<redacted>``
    and the command of a one-off ``run`` or of ``enter`` is left out (either may hold a
    secret)."""
    name, first = command_name_or_raw(argv)
    words = list(argv[:first])
    kept = _KEPT_BEFORE_COMMAND.get(name)
    if kept is not None:  # APP (and INSTANCE), then a command
        rest = list(argv[first:first + kept])
        if len(argv) > first + kept:
            rest.append(f"<{len(argv) - first - kept} words redacted>")
        return " ".join([*words, *rest])
    for a in argv[first:]:
        key, eq, _ = a.partition("=")
        words.append(f"{key}=<redacted>" if eq and not a.startswith("-") else a)
    return " ".join(words)


def command_name_or_raw(argv: Sequence[str]) -> tuple[str, int]:
    """Like :func:`command_name`, never raising (for logging refused lines too)."""
    try:
        return command_name(argv)
    except ShipmateError:
        return "", 0
