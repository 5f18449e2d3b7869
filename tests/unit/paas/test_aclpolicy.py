import argparse

import pytest

from shipmate.cli.main import build_parser
from shipmate.cli.registry import COMMANDS as CLI_COMMANDS
from shipmate.errors import ForbiddenError, ValidationError
from shipmate.paas.aclpolicy import SCOPES, app_named, check_git, check_line, check_parsed
from shipmate.paas.sshpolicy import _VALUE_OPTIONS, COMMANDS

GRANTED = frozenset({"mine", "ours"})


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's own argparse parser, by command name."""
    root = build_parser()
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word, sub in action.choices.items():
                    name = f"{prefix} {word}".strip()
                    if name in CLI_COMMANDS:
                        found[name] = sub
                    else:
                        walk(sub, name)
    walk(root, "")
    assert set(found) == set(CLI_COMMANDS)
    return found


def test_every_command_is_classified() -> None:
    build_parser()  # registers every command
    assert set(SCOPES) == set(CLI_COMMANDS) == set(COMMANDS)


def test_the_app_of_an_app_scoped_command_is_where_the_cli_parser_puts_it() -> None:
    for name, parser in _parsers().items():
        scope = SCOPES[name]
        if scope.kind != "app":
            continue
        if scope.option:
            dests = {a.dest for a in parser._actions if scope.option in a.option_strings}
        else:
            positional = [a for a in parser._actions if not a.option_strings]
            dests = {positional[scope.position].dest}
        assert dests == {"app"}, name  # what the CLI's check_parsed reads


def test_every_option_with_a_value_of_an_app_command_is_known_to_the_line_check() -> None:
    # Otherwise the SSH server would take an option's value for the app.
    for name, parser in _parsers().items():
        if SCOPES[name].kind != "app":
            continue
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not isinstance(
                    action, argparse._HelpAction):
                assert set(action.option_strings) <= _VALUE_OPTIONS, (name, action.dest)


@pytest.mark.parametrize("line", [
    ["config:set", "mine", "A=1"], ["--format", "json", "apps:report", "mine"],
    ["run", "mine", "ls", "other"], ["logs", "-n", "5", "ours"], ["logs", "ours", "-t"],
    ["resource:limit", "--memory", "64m", "mine"], ["events", "--app", "mine"],
    ["events", "--app=ours", "-n", "3"], ["apps:list"], ["import", "chef"],
    ["letsencrypt:auto-renew", "mine"], ["ps:scale", "mine", "web=2"], ["--help"],
    ["releases:rollback", "mine", "v1"], ["storage:unmount", "mine", "a:/b"],
])
def test_a_non_admin_runs_what_it_is_granted(line: list[str]) -> None:
    from shipmate.paas.sshpolicy import command_name

    name, first = command_name(line)
    check_line(name, line[first:], "bob", GRANTED)


@pytest.mark.parametrize(("line", "app"), [
    (["config:show", "other"], "other"), (["apps:destroy", "other"], "other"),
    (["run", "other", "cat", "/etc/passwd"], "other"), (["events", "--app", "other"], "other"),
    (["resource:limit", "--memory", "64m", "other"], "other"),
    (["logs", "--num", "5", "other"], "other"),
])
def test_a_non_admin_is_refused_other_apps(line: list[str], app: str) -> None:
    from shipmate.paas.sshpolicy import command_name

    name, first = command_name(line)
    assert app_named(name, line[first:]) == app
    with pytest.raises(ForbiddenError) as info:
        check_line(name, line[first:], "bob", GRANTED)
    assert info.value.message == f"User bob does not have permissions to run {name} on {app}"
    assert f"acl:add {app} bob" in str(info.value)


@pytest.mark.parametrize("name", [
    "fleet submit", "fleet list-units", "cluster status", "ssh-keys:add", "ssh-keys:list",
    "acl:add", "acl:list", "domains:set-global", "domains:clear-global", "letsencrypt:set",
    "letsencrypt:list", "cache stats", "status", "info", "apps:create", "apps:rename",
    "apps:clone", "postgres:link", "git:load-image", "git:from-image", "storage:mount",
    "events", "letsencrypt:auto-renew", "no-such-command",
])
def test_a_non_admin_is_refused_admin_commands(name: str) -> None:
    # Even naming an app granted to it (events and auto-renew need one to be named).
    args = ["mine", "x"] if name not in ("events", "letsencrypt:auto-renew") else []
    with pytest.raises(ForbiddenError) as info:
        check_line(name, args, "bob", GRANTED)
    assert info.value.message == f"User bob does not have permissions to run {name}"


def test_the_dashboard_route_is_an_admins_even_if_granted() -> None:
    granted = GRANTED | {"shipmate"}
    for line in (["certs:add", "shipmate"], ["certs:report", "shipmate"],
                 ["letsencrypt:enable", "shipmate"], ["certs:remove", "shipmate"]):
        with pytest.raises(ForbiddenError, match="the dashboard's route"):
            check_line(line[0], line[1:], "alice", granted)
        with pytest.raises(ForbiddenError, match="the dashboard's route"):
            check_parsed(line[0], "shipmate", "alice", granted)


def test_an_app_scoped_command_without_its_app_says_so() -> None:
    with pytest.raises(ValidationError) as info:
        check_line("config:show", [], "bob", GRANTED)
    assert not isinstance(info.value, ForbiddenError)
    assert "Please specify an app" in info.value.message


def test_the_parsed_check_refuses_what_the_parser_read_differently() -> None:
    # `--mem` is argparse's abbreviation of --memory: the line check sees "64m" as the app,
    # the parser sees "other"; the CLI checks what its parser made of it.
    check_parsed("resource:limit", "mine", "bob", GRANTED)
    with pytest.raises(ForbiddenError):
        check_parsed("resource:limit", "other", "bob", GRANTED)
    with pytest.raises(ForbiddenError):
        check_parsed("fleet submit", None, "bob", GRANTED)
    check_parsed("apps:list", None, "bob", frozenset())


def test_git_needs_a_granted_app_and_an_admin_to_create_one() -> None:
    check_git(True, "mine", True, "bob", GRANTED)
    check_git(False, "ours", True, "bob", GRANTED)
    with pytest.raises(ForbiddenError, match="permissions to push to other"):
        check_git(True, "other", True, "bob", GRANTED)
    with pytest.raises(ForbiddenError, match="permissions to fetch from other"):
        check_git(False, "other", True, "bob", GRANTED)
    with pytest.raises(ForbiddenError, match="permissions to create apps") as info:
        check_git(True, "new", False, "bob", GRANTED | {"new"})
    assert "apps:create new" in str(info.value)
