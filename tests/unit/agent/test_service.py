"""The pure part of the supervisor: reading [Service], command splitting, environment,
restart policy, backoff, state names."""

from __future__ import annotations

import signal

import pytest

from shipmate.agent.service import (
    PHASES,
    Command,
    ExitStatus,
    backoff_delay,
    config_from_json,
    config_to_json,
    next_attempt,
    parse_environment,
    parse_environment_file,
    parse_timespan,
    service_config,
    should_restart,
    split_command,
    substitute_env,
)
from shipmate.errors import ValidationError
from shipmate.spec.unitfile import parse

CODE_IT = """\
[Unit]
Description=code.it %i

[Service]
Environment="GREETING=hello there" PORT=80
EnvironmentFile=-/etc/code.it.env
ExecStartPre=-/usr/bin/docker rm -f code.it.%i
ExecStart=/usr/bin/docker run --name code.it.%i -p ${PORT}:80 shipmate/base sh -c 'echo $GREETING'
ExecStartPost=/usr/bin/etcdctl set /domains/code.it/%H:%i running
ExecStop=/usr/bin/docker stop code.it.%i
ExecStopPost=/usr/bin/etcdctl rm /domains/code.it/%H:%i
Restart=always
RestartSec=2s

[X-Fleet]
X-Conflicts=code.it.*.service
"""


def test_code_it_unit_reads_into_argv_lists_with_specifiers() -> None:
    cfg = service_config(parse(CODE_IT), "code.it@1.service", hostname="m1")
    assert cfg.exec_start_pre == (Command(("/usr/bin/docker", "rm", "-f", "code.it.1"), True),)
    assert cfg.exec_start[0].argv == (
        "/usr/bin/docker", "run", "--name", "code.it.1", "-p", "${PORT}:80", "shipmate/base",
        "sh", "-c", "echo $GREETING")
    assert cfg.exec_start_post[0].argv[-2:] == ("/domains/code.it/m1:1", "running")
    assert cfg.exec_stop_post[0].argv[-1] == "/domains/code.it/m1:1"
    assert cfg.environment == (("GREETING", "hello there"), ("PORT", "80"))
    assert cfg.environment_files == (("/etc/code.it.env", True),)
    assert (cfg.restart, cfg.restart_sec) == ("always", 2.0)


def test_digest_changes_with_what_runs_and_survives_json() -> None:
    a = service_config(parse(CODE_IT), "code.it@1.service", hostname="m1")
    b = service_config(parse(CODE_IT), "code.it@2.service", hostname="m1")
    assert a.digest != b.digest
    assert config_from_json(config_to_json(a)) == a
    assert config_from_json(config_to_json(a)).digest == a.digest


@pytest.mark.parametrize(("line", "argv", "ignore"), [
    ("/bin/echo a 'b c' \"d e\"", ("/bin/echo", "a", "b c", "d e"), False),
    ("-/bin/false", ("/bin/false",), True),
    ("@-/bin/true x", ("/bin/true", "x"), True),
    ("sleep 5", ("sleep", "5"), False),
])
def test_split_command(line: str, argv: tuple[str, ...], ignore: bool) -> None:
    assert split_command(line, "ExecStart") == Command(argv, ignore)


@pytest.mark.parametrize("line", ["/bin/echo 'unterminated", "bin/relative", "-"])
def test_split_command_refuses(line: str) -> None:
    with pytest.raises(ValidationError, match="ExecStart"):
        split_command(line, "ExecStart")


def test_empty_exec_line_resets_the_list() -> None:
    unit = parse("[Service]\nExecStartPre=/bin/a\nExecStartPre=\nExecStartPre=/bin/b\n"
                 "ExecStart=/bin/c\n")
    cfg = service_config(unit, "x.service")
    assert [c.argv for c in cfg.exec_start_pre] == [("/bin/b",)]


def test_substitute_env_like_systemd() -> None:
    env = {"A": "one two", "B": "x"}
    assert substitute_env(["/bin/e", "$A", "${A}", "pre${B}post", "$$A", "'$B;'"], env) == [
        "/bin/e", "one", "two", "one two", "prexpost", "$A", "'$B;'"]
    assert substitute_env(["$MISSING", "${MISSING}"], env) == [""]


def test_environment_quoting_order_and_reset() -> None:
    assert parse_environment(['"A=1 2" B=3', "A=4"]) == (("A", "4"), ("B", "3"))
    assert parse_environment(["A=1", "", "B=2"]) == (("B", "2"),)
    with pytest.raises(ValidationError, match="NAME=VALUE"):
        parse_environment(["novalue"])


def test_environment_file() -> None:
    text = "# c\n; c\nexport A=1\nB = \"two words\"\nbad line\nC='q'\n"
    assert parse_environment_file(text) == {"A": "1", "B": "two words", "C": "q"}


@pytest.mark.parametrize(("text", "seconds"), [
    ("5", 5.0), ("500ms", 0.5), ("1min 30s", 90.0), ("2h", 7200.0), ("0.1", 0.1)])
def test_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text, "RestartSec") == pytest.approx(seconds)


def test_timespan_refuses_garbage() -> None:
    with pytest.raises(ValidationError, match="RestartSec=soon"):
        parse_timespan("soon", "RestartSec")


@pytest.mark.parametrize(("body", "message"), [
    ("Type=forking\nExecStart=/bin/x", "Type=forking is not supported"),
    ("Type=weird\nExecStart=/bin/x", "unknown Type=weird"),
    ("Restart=sometimes\nExecStart=/bin/x", "unknown Restart=sometimes"),
    ("ExecStart=/bin/a\nExecStart=/bin/b", "several ExecStart="),
    ("ExecStartPre=/bin/a", "no ExecStart="),
    ("ExecStart=/bin/a\nRemainAfterExit=maybe", "RemainAfterExit=maybe"),
])
def test_refused_services(body: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        service_config(parse("[Service]\n" + body), "x.service")


KILLED = ExitStatus(signal=signal.SIGKILL)
TERMED = ExitStatus(signal=signal.SIGTERM)
OK, FAIL, UNKNOWN = ExitStatus(code=0), ExitStatus(code=1), ExitStatus()


@pytest.mark.parametrize(("policy", "status", "restart"), [
    ("no", FAIL, False), ("always", OK, True), ("always", TERMED, True),
    ("on-success", OK, True), ("on-success", TERMED, True), ("on-success", FAIL, False),
    ("on-failure", OK, False), ("on-failure", FAIL, True), ("on-failure", KILLED, True),
    ("on-failure", TERMED, False), ("on-abnormal", FAIL, False), ("on-abnormal", KILLED, True),
    ("on-abort", KILLED, True), ("on-abort", FAIL, False), ("on-watchdog", KILLED, False),
    ("on-failure", UNKNOWN, True), ("on-success", UNKNOWN, False),
])
def test_restart_table(policy: str, status: ExitStatus, restart: bool) -> None:
    assert should_restart(policy, status) is restart


def test_exit_status_words() -> None:
    assert ExitStatus.from_returncode(-9).describe() == "code=killed, signal=SIGKILL"
    assert ExitStatus.from_returncode(3).describe() == "code=exited, status=3"
    assert not UNKNOWN.known and not UNKNOWN.clean


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(0.5, n, 5.0) for n in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff_delay(10.0, 1, 5.0) == 10.0  # never below RestartSec=


def test_stable_run_resets_the_counter() -> None:
    assert next_attempt(4, 0.5) == 5
    assert next_attempt(4, 60.0) == 1


def test_every_phase_has_systemd_names() -> None:
    assert PHASES["running"] == ("active", "running")
    assert PHASES["start-pre"] == ("activating", "start-pre")
    assert PHASES["failed"] == ("failed", "failed")
    assert {a for a, _ in PHASES.values()} == {
        "active", "activating", "deactivating", "inactive", "failed"}
