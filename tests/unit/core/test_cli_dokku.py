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


def test_enter_execs_docker_with_the_container_after_the_end_of_options() -> None:
    from shipmate.cli.dokku import exec_argv

    assert exec_argv("shipmate-a_web.1", ["-x", "--privileged"], tty=False, term="vt220") == [
        "docker", "exec", "-i", "--", "shipmate-a_web.1", "-x", "--privileged"]
    assert exec_argv("c", [], tty=True, term="vt220") == [
        "docker", "exec", "-it", "-e", "TERM", "--", "c", "/bin/sh"]
    assert exec_argv("c", ["ls"], tty=True, term="") == ["docker", "exec", "-it", "--", "c",
                                                          "ls"]
