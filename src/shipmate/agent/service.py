"""What a ``.service`` unit asks the supervisor to do, and the supervisor's decisions (pure).

:func:`service_config` reads a parsed unit file's ``[Service]`` section into a frozen
:class:`ServiceConfig` with every command already split into an argv list (specifiers expanded,
systemd's ``-`` prefix understood). The restart policy, the backoff and the state names are
plain functions and tables here, so they are tested without processes; the process I/O lives
in :mod:`shipmate.agent.supervisor`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from shipmate.errors import ValidationError
from shipmate.spec.unitfile import UnitFile
from shipmate.spec.unitname import expand
from shipmate.spec.units import SERVICE_TYPES

RESTART_POLICIES = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort",
                    "on-watchdog")
#: systemd's "clean" signals: a process ended by one of them exited cleanly.
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
DEFAULT_RESTART_SEC = 0.1  # systemd's default
DEFAULT_RESTART_MAX_SEC = 30.0  # cap of the exponential backoff (RestartMaxDelaySec=)
DEFAULT_STOP_TIMEOUT = 10.0  # systemd has 90 s; a cluster wants units to move faster
DEFAULT_START_TIMEOUT = 90.0  # systemd's, for each ExecStartPre/ExecStartPost/oneshot command
STABLE_AFTER = 10.0  # a main process that ran this long resets the backoff

#: phase -> (ACTIVE, SUB) as systemctl and fleetctl show them.
PHASES: Mapping[str, tuple[str, str]] = {
    "dead": ("inactive", "dead"),
    "start-pre": ("activating", "start-pre"),
    "start": ("activating", "start"),
    "start-post": ("activating", "start-post"),
    "running": ("active", "running"),
    "exited": ("active", "exited"),
    "stop": ("deactivating", "stop"),
    "stop-sigterm": ("deactivating", "stop-sigterm"),
    "stop-sigkill": ("deactivating", "stop-sigkill"),
    "stop-post": ("deactivating", "stop-post"),
    "auto-restart": ("activating", "auto-restart"),
    "failed": ("failed", "failed"),
}


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``Exec*=`` line: its argv and whether a failure is ignored (``-`` prefix)."""

    argv: tuple[str, ...]
    ignore_failure: bool = False

    def render(self) -> str:
        """The command as a shell-quoted line, for the journal."""
        return ("-" if self.ignore_failure else "") + shlex.join(self.argv)


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """A ``.service`` unit, ready to run."""

    name: str
    type: str = "simple"
    exec_start_pre: tuple[Command, ...] = ()
    exec_start: tuple[Command, ...] = ()
    exec_start_post: tuple[Command, ...] = ()
    exec_stop: tuple[Command, ...] = ()
    exec_stop_post: tuple[Command, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    environment_files: tuple[tuple[str, bool], ...] = ()  # (path, optional)
    working_directory: str | None = None
    restart: str = "no"
    restart_sec: float = DEFAULT_RESTART_SEC
    restart_max_sec: float = DEFAULT_RESTART_MAX_SEC
    timeout_stop: float = DEFAULT_STOP_TIMEOUT
    timeout_start: float = DEFAULT_START_TIMEOUT
    remain_after_exit: bool = False

    @property
    def digest(self) -> str:
        """A hash of everything that defines how the unit runs: a changed digest means the
        running process is out of date and is restarted."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_to_json(cfg: ServiceConfig) -> dict[str, Any]:
    """A JSON-able form, kept in the supervisor's state file so a restarted daemon can run
    an adopted unit's ExecStop and restart policy before the agent reconciles."""
    return dataclasses.asdict(cfg)


def config_from_json(data: Mapping[str, Any]) -> ServiceConfig:
    """Reverse :func:`config_to_json`."""
    d = dict(data)
    for key in ("exec_start_pre", "exec_start", "exec_start_post", "exec_stop",
                "exec_stop_post"):
        d[key] = tuple(Command(tuple(c["argv"]), bool(c["ignore_failure"])) for c in d[key])
    d["environment"] = tuple((k, v) for k, v in d["environment"])
    d["environment_files"] = tuple((p, bool(o)) for p, o in d["environment_files"])
    return ServiceConfig(**d)


@dataclasses.dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, a signal, or unknown (an adopted process that is
    not our child, whose status went to its real parent)."""

    code: int | None = None
    signal: int | None = None

    @staticmethod
    def from_returncode(rc: int) -> ExitStatus:
        """From ``Popen.returncode`` (negative: killed by that signal)."""
        return ExitStatus(signal=-rc) if rc < 0 else ExitStatus(code=rc)

    @property
    def known(self) -> bool:
        """False for an adopted process whose status nobody could read."""
        return self.code is not None or self.signal is not None

    @property
    def clean(self) -> bool:
        """systemd's definition: exit code 0 or one of the clean signals."""
        if self.signal is not None:
            return self.signal in CLEAN_SIGNALS
        return self.code == 0

    def describe(self) -> str:
        """``code=exited, status=1`` style, as systemd logs it."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"code=killed, signal={name}"
        if self.code is not None:
            return f"code=exited, status={self.code}"
        return "code=unknown (adopted process)"


def should_restart(policy: str, status: ExitStatus) -> bool:
    """systemd's ``Restart=`` table, for a main process (or start) that ended by itself.

    An unknown status (adopted process) counts as an unclean exit for ``always``,
    ``on-failure`` and ``on-abnormal``, so a crashed adopted unit is not left dead.
    """
    if policy == "always":
        return True
    if policy == "no":
        return False
    if not status.known:
        return policy in ("on-failure", "on-abnormal")
    if policy == "on-success":
        return status.clean
    if policy == "on-failure":
        return not status.clean
    if policy in ("on-abnormal", "on-abort"):
        return status.signal is not None and status.signal not in CLEAN_SIGNALS
    return False  # on-watchdog: there is no watchdog here


def backoff_delay(restart_sec: float, attempt: int, cap: float) -> float:
    """Seconds to wait before restart number ``attempt`` (1-based): ``RestartSec=`` doubled
    each time, capped at ``cap`` (but never below ``RestartSec=`` itself)."""
    delay = restart_sec * 2.0 ** max(0, attempt - 1)
    return max(restart_sec, min(delay, cap))


def next_attempt(previous: int, ran_for: float) -> int:
    """The restart counter after a run of ``ran_for`` seconds: reset by a stable run."""
    return 1 if ran_for >= STABLE_AFTER else previous + 1


# --- reading the unit -----------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORD_VAR = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*(minutes?|seconds?|hours?|msec|min|sec|ms|hr|s|m|h)?")
_TIME_UNITS = {"ms": 0.001, "msec": 0.001, "": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0,
               "seconds": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
               "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}


def parse_timespan(text: str, option: str) -> float:
    """systemd time spans: ``5``, ``500ms``, ``1min 30s``, ``infinity`` (-> inf)."""
    text = text.strip()
    if text == "infinity":
        return float("inf")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _TIME.match(text, pos)
        if not m or m.end() == pos:
            raise ValidationError(f"{option}={text}: not a time span",
                                  hint="use seconds (5), or units: 500ms, 2s, 1min 30s")
        total += float(m.group(1)) * _TIME_UNITS[m.group(2) or ""]
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return total


def split_command(line: str, option: str) -> Command | None:
    """Split an ``Exec*=`` value like systemd: prefixes ``-@:+!``, then quoted words.
    An empty value gives None (systemd: resets the list)."""
    line = line.strip()
    if not line:
        return None
    ignore = False
    while line and line[0] in "-@:+!":
        ignore = ignore or line[0] == "-"
        line = line[1:]
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise ValidationError(f"{option}={line}: {exc}", hint="check the quotes") from exc
    if not words:
        raise ValidationError(f"{option}= has a prefix but no command")
    if "/" in words[0] and not words[0].startswith("/"):
        # systemd takes an absolute path or a bare name looked up in PATH, nothing between
        raise ValidationError(f"{option}={line}: the executable must be an absolute path",
                              hint=f"write /{words[0]} or a bare program name")
    return Command(tuple(words), ignore)


def substitute_env(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """systemd's variable substitution: ``$FOO`` as a whole word splits the value at
    whitespace into words; ``${FOO}`` anywhere becomes the value as is; ``$$`` is ``$``."""
    out: list[str] = []
    for word in argv:
        m = _WORD_VAR.match(word)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        replaced = _VAR.sub(lambda v: env.get(v.group(1), ""), word.replace("$$", "\0"))
        out.append(replaced.replace("\0", "$"))
    return out


def parse_environment(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``Environment=`` lines (quoted, several per line; an empty line resets), in order,
    later assignments winning."""
    env: dict[str, str] = {}
    for value in values:
        if not value.strip():
            env.clear()
            continue
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValidationError(f"Environment={value}: {exc}") from exc
        for word in words:
            key, sep, val = word.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValidationError(f"Environment={value}: {word!r} is not NAME=VALUE")
            env[key] = val
    return tuple(env.items())


def parse_environment_file(text: str) -> dict[str, str]:
    """An ``EnvironmentFile=``: ``NAME=VALUE`` lines, ``#``/``;`` comments, optional quotes
    around the value, an optional ``export`` word. Bad lines are skipped, as systemd does."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, val = line.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        env[key] = val
    return env


def _bool(text: str, option: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise ValidationError(f"{option}={text}: not a boolean", hint="use yes or no")


def _commands(values: Sequence[str], option: str) -> tuple[Command, ...]:
    cmds: list[Command] = []
    for value in values:
        cmd = split_command(value, option)
        if cmd is None:
            cmds.clear()
        else:
            cmds.append(cmd)
    return tuple(cmds)


def service_config(unit: UnitFile, name: str, *, hostname: str | None = None,
                   machine_id: str | None = None) -> ServiceConfig:
    """Read the ``[Service]`` section of ``unit`` (named ``name``), expanding specifiers, or
    raise :class:`ValidationError` naming the option that cannot be run."""

    def vals(option: str) -> list[str]:
        return [expand(v, name, hostname, machine_id) for v in unit.values("Service", option)]

    def last(option: str, default: str) -> str:
        found = vals(option)
        return found[-1] if found else default

    cfg = ServiceConfig(
        name=name,
        type=last("Type", "simple"),
        exec_start_pre=_commands(vals("ExecStartPre"), "ExecStartPre"),
        exec_start=_commands(vals("ExecStart"), "ExecStart"),
        exec_start_post=_commands(vals("ExecStartPost"), "ExecStartPost"),
        exec_stop=_commands(vals("ExecStop"), "ExecStop"),
        exec_stop_post=_commands(vals("ExecStopPost"), "ExecStopPost"),
        environment=parse_environment(vals("Environment")),
        environment_files=tuple((v.lstrip("-"), v.startswith("-"))
                                for v in vals("EnvironmentFile") if v.strip()),
        working_directory=last("WorkingDirectory", "") or None,
        restart=last("Restart", "no"),
        restart_sec=parse_timespan(last("RestartSec", str(DEFAULT_RESTART_SEC)), "RestartSec"),
        restart_max_sec=parse_timespan(
            last("RestartMaxDelaySec", str(DEFAULT_RESTART_MAX_SEC)), "RestartMaxDelaySec"),
        timeout_stop=parse_timespan(
            last("TimeoutStopSec", last("TimeoutSec", str(DEFAULT_STOP_TIMEOUT))),
            "TimeoutStopSec"),
        timeout_start=parse_timespan(
            last("TimeoutStartSec", last("TimeoutSec", str(DEFAULT_START_TIMEOUT))),
            "TimeoutStartSec"),
        remain_after_exit=_bool(last("RemainAfterExit", "no"), "RemainAfterExit"),
    )
    check_service(cfg)
    return cfg


def check_service(cfg: ServiceConfig) -> None:
    """Refuse combinations the supervisor cannot run, naming the option."""
    if cfg.type == "forking":
        raise ValidationError(f"{cfg.name}: Type=forking is not supported",
                              hint="run the program in the foreground (Type=simple)")
    if cfg.type not in SERVICE_TYPES:
        raise ValidationError(f"{cfg.name}: unknown Type={cfg.type}",
                              hint="use simple, exec, notify or oneshot")
    if cfg.restart not in RESTART_POLICIES:
        raise ValidationError(f"{cfg.name}: unknown Restart={cfg.restart}",
                              hint="use " + ", ".join(RESTART_POLICIES))
    if not cfg.exec_start:
        raise ValidationError(f"{cfg.name}: [Service] has no ExecStart=",
                              hint="say what the unit runs: ExecStart=/usr/bin/...")
    if cfg.type != "oneshot" and len(cfg.exec_start) > 1:
        raise ValidationError(f"{cfg.name}: several ExecStart= lines need Type=oneshot")
    if cfg.working_directory and not cfg.working_directory.lstrip("-").startswith("/"):
        raise ValidationError(f"{cfg.name}: WorkingDirectory= must be an absolute path")
