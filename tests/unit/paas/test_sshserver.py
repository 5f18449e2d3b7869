import asyncio
import json
import logging

import asyncssh
import pytest

from shipmate import config
from shipmate.cli.main import build_parser
from shipmate.cli.registry import COMMANDS as CLI_COMMANDS
from shipmate.errors import ShipmateError
from shipmate.paas.sshkeys import SshKeys
from shipmate.paas.sshpolicy import COMMANDS, check_remote, positionals, redact
from shipmate.paas.sshserver import SshServer, _Server, parse_command, remote_argv
from shipmate.testing.store import memory_store
from shipmate.testing.streams import BufferWriter, EmptyReader


@pytest.mark.parametrize("argv", [
    ["apps:list"], ["--format", "json", "apps:list"], ["--format=json", "releases", "app"],
    ["--help"], ["apps:report", "app", "--app-locked"], ["config:set", "app", "X=--debug"],
    [], ["fleet", "submit", "web.service"], ["fleet", "submit", "web.service", "-"],
    ["fleet", "start", "web.service", "--block-attempts", "3"], ["ssh-keys:add", "bob"],
    ["ssh-keys:add", "bob", "-"], ["import", "chef"], ["import", "puppet", "--name", "site"],
    ["import", "chef", "-", "--format=json"], ["config:set", "app", "URL=http://x/y"],
    ["fleet", "journal", "web.service", "-n", "5"], ["cache", "stats"],
])
def test_allowed_remote_command_lines(argv: list[str]) -> None:
    assert remote_argv(argv) == argv


@pytest.mark.parametrize("argv", [
    ["down"], ["up"], ["daemon"], ["--format", "json", "down"], ["--format=json", "up"],
    ["--debug", "down"], ["--debug", "apps:list"], ["--state-dir", "/tmp/x", "up"],
    ["--state", "/tmp/x", "apps:list"], ["--cluster", "node-2", "apps:list"], ["-x"],
    # the chain to root of issue 23: server paths in, server paths out
    ["import", "chef", "/dev/stdin", "-o", "/tmp/d/x.yaml"], ["import", "chef", "--out=x"],
    ["import", "chef", "--o", "x"], ["import", "puppet", "/etc/passwd"],
    ["apply", "/tmp/d/x.yaml", "--yes"], ["plan", "/tmp/d/x.yaml"],
    ["fleet", "start", "/tmp/d/x.service"], ["fleet", "load", "../x.service"],
    ["fleet", "submit", "/some/0600-file"], ["fleet", "submit", "a.service", "b.service"],
    ["fleet", "submit"], ["ssh-keys:add", "bob", "/root/.ssh/id_rsa.pub"],
    ["cluster", "up"], ["cluster", "partition", "node-2"], ["images:bootstrap"],
    ["cache", "gc"], ["cache", "serve"], ["no-such-command"], ["fleet"], ["fleet", "bogus"],
])
def test_refused_remote_command_lines(argv: list[str]) -> None:
    with pytest.raises(ShipmateError):
        remote_argv(argv)


def test_every_cli_command_is_in_the_allowlist_table() -> None:
    build_parser()  # registers every command
    assert set(CLI_COMMANDS) == set(COMMANDS)


def test_only_the_table_says_what_reads_stdin() -> None:
    assert {n for n, r in COMMANDS.items() if r.stdin} == {
        "fleet submit", "ssh-keys:add", "import chef", "import puppet", "certs:add",
        "postgres:import", "postgres:connect", "redis:import", "redis:connect",
        "git:load-image", "enter"}


def test_only_enter_runs_on_a_terminal_and_over_ssh() -> None:
    assert {n for n, r in COMMANDS.items() if r.terminal} == {"enter"}
    assert remote_argv(["enter", "app", "web.1", "sh", "-c", "tty; echo $TERM"])
    assert check_remote(["fleet", "submit", "a.service"]).stdin == "unit file"


def test_positionals_skip_options_and_their_values() -> None:
    assert positionals(["--format", "json", "a", "--name=x", "-", "--full"]) == ["a", "-"]


def test_redact_hides_values_and_one_off_commands() -> None:
    assert redact(["config:set", "app", "PASSWORD=hunter2", "--no-restart"]) == \
        "config:set app PASSWORD=<redacted> --no-restart"
    assert redact(["--format=json", "config:set", "app", "A=1"]) == \
        "--format=json config:set app A=<redacted>"
    assert redact(["run", "app", "env", "TOKEN=x"]) == "run app <2 words redacted>"
    assert redact(["enter", "app", "web.1", "psql", "postgres://u:pw@db"]) == \
        "enter app web.1 <2 words redacted>"
    assert redact(["enter", "app"]) == "enter app"
    assert redact(["--debug", "config:set", "a", "K=V"]).endswith("K=<redacted>")


@pytest.mark.parametrize("command", ["apps:list\0", "a 'b", "x" * 70000])
def test_unparseable_command_lines_are_refused_in_one_line(command: str) -> None:
    with pytest.raises(ShipmateError) as info:
        parse_command(command)
    assert len(info.value.message.splitlines()) == 1
    assert "\0" not in str(info.value)


async def _dispatch(command: str) -> tuple[int, bytes, bytes]:
    store = await memory_store()
    server = SshServer(config.load({}), None, SshKeys(store))  # type: ignore[arg-type]
    out, err = BufferWriter(), BufferWriter()
    code = await server.dispatch(command, "tester", EmptyReader(), out, err)
    await store.close()
    return code, out.data, err.data


@pytest.mark.parametrize("command", [
    "apps:list \0", "fleet start /etc/shadow", "apply /tmp/x.yaml --yes", "down",
    "import chef /dev/stdin -o /tmp/d/x.yaml", "'unclosed", "git-receive-pack '../x'"])
async def test_dispatch_refuses_with_one_dokku_line_and_no_traceback(command: str) -> None:
    code, out, err = await _dispatch(command)
    assert code == 1 and out == b""
    lines = err.decode().splitlines()
    assert lines and all(line.startswith(" !     ") for line in lines), err
    assert len(lines) <= 2 and b"Traceback" not in err and b"internal error" not in err


async def test_dispatch_logs_the_command_line_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "shipmate.paas.sshserver")
    await _dispatch("apply SECRET=hunter2 x.yaml")
    assert "SECRET=<redacted>" in caplog.text and "hunter2" not in caplog.text


async def _validate(username: str, key: asyncssh.SSHKey, known: bool = True) -> bool:
    store = await memory_store()
    keys = SshKeys(store)
    if known:  # stored as an older Shipmate (without the strength check) would have
        record = {"name": "k", "fingerprint": str(key.get_fingerprint("sha256"))}
        await store.put("/shipmate/ssh-keys/k", json.dumps(record))
    try:
        return await _Server(keys).validate_public_key(username, key)
    finally:
        await store.close()


async def test_auth_needs_the_shipmate_user_and_a_known_strong_key() -> None:
    ed = asyncssh.generate_private_key("ssh-ed25519")
    assert await _validate("shipmate", ed)
    assert not await _validate("root", ed)
    assert not await _validate("shipmate", ed, known=False)
    rsa = await asyncio.to_thread(asyncssh.generate_private_key, "ssh-rsa", key_size=1024)
    assert not await _validate("shipmate", rsa)
    dsa = await asyncio.to_thread(asyncssh.generate_private_key, "ssh-dss")
    assert not await _validate("shipmate", dsa)
