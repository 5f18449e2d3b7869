"""Command lines of Dokku's everyday commands parse as Dokku users type them."""

from shipmate.cli.main import parse


def test_logs_follow_spellings() -> None:
    for flag in ("-t", "--tail", "-f", "--follow"):
        assert parse(["logs", "app", flag])[1].tail is True
    assert parse(["logs", "app"])[1].tail is False


def test_resource_and_enter_arguments() -> None:
    ns = parse(["resource:limit", "app", "--process-type", "web", "--memory", "256m",
                "--cpu", "0.5"])[1]
    assert (ns.app, ns.process_type, ns.memory, ns.cpu) == ("app", "web", "256m", "0.5")
    ns = parse(["enter", "app", "web.1", "ls", "-la"])[1]
    assert (ns.instance, ns.cmd) == ("web.1", ["ls", "-la"])
    assert parse(["enter", "app"])[1].instance == "web"
    ns = parse(["apps:rename", "old", "new", "--skip-deploy"])[1]
    assert (ns.old, ns.new, ns.skip_deploy) == ("old", "new", True)
