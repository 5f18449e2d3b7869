import pytest

from shipmate.errors import ShipmateError
from shipmate.paas.sshserver import remote_argv


@pytest.mark.parametrize("argv", [
    ["apps:list"], ["--format", "json", "apps:list"], ["--format=json", "releases", "app"],
    ["--help"], ["apps:report", "app", "--app-locked"], ["config:set", "app", "X=--debug"],
    [],
])
def test_allowed_remote_command_lines(argv: list[str]) -> None:
    assert remote_argv(argv) == argv


@pytest.mark.parametrize("argv", [
    ["down"], ["up"], ["daemon"], ["--format", "json", "down"], ["--format=json", "up"],
    ["--debug", "down"], ["--debug", "apps:list"], ["--state-dir", "/tmp/x", "up"],
    ["--state", "/tmp/x", "apps:list"], ["--cluster", "node-2", "apps:list"], ["-x"],
])
def test_refused_remote_command_lines(argv: list[str]) -> None:
    with pytest.raises(ShipmateError):
        remote_argv(argv)
