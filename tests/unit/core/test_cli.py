import pytest

from shipmate.cli import output
from shipmate.cli.main import main


def test_no_daemon_says_how_to_start_it(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHIPMATE_STATE_DIR", str(tmp_path))
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(" !     no Shipmate daemon answers at")
    assert "shipmate up" in err
    assert "Traceback" not in err


def test_bad_setting_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHIPMATE_CACHE_PORT", "x")
    assert main(["info"]) == 1
    assert "SHIPMATE_CACHE_PORT='x' is not a valid int" in capsys.readouterr().err


def test_info_json(monkeypatch, capsys, tmp_path) -> None:
    import json

    monkeypatch.setenv("SHIPMATE_STATE_DIR", str(tmp_path))
    assert main(["info", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "state_dir", "value": str(tmp_path), "env": "SHIPMATE_STATE_DIR",
            "help": "where the daemon keeps its state"} in rows


def test_output_conventions(capsys) -> None:
    output.step("Building app")
    output.header("Application deployed:")
    output.error("two\nlines")
    cap = capsys.readouterr()
    assert cap.out == "-----> Building app\n=====> Application deployed:\n"
    assert cap.err == " !     two\n !     lines\n"


def test_table_columns_and_no_legend(capsys) -> None:
    rows = [{"unit": "a.service", "machine": "m1"}, {"unit": "bb.service", "machine": "m2"}]
    output.table(rows, ["unit", "machine"])
    output.table(rows, ["unit", "machine"], legend=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["UNIT", "MACHINE"]
    assert lines[1].split("\t") == ["a.service ", "m1"]
    assert lines[3].split() == ["a.service", "m1"]
    assert len(lines) == 5


def test_unknown_command_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_cluster_flag_points_the_cli_at_a_node_socket(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHIPMATE_STATE_DIR", str(tmp_path))
    assert main(["--cluster", "node-2", "status"]) == 1
    err = capsys.readouterr().err
    assert "node-2/shipmate.sock" in err and str(tmp_path) in err


def test_state_dir_flag(tmp_path, capsys) -> None:
    import json

    assert main(["--state-dir", str(tmp_path / "s"), "info", "--format", "json"]) == 0
    rows = {r["name"]: r["value"] for r in json.loads(capsys.readouterr().out)}
    assert rows["socket"] == str(tmp_path / "s" / "shipmate.sock")


def test_a_named_command_parses_as_with_the_full_parser(capsys) -> None:
    from shipmate.cli.main import build_parser, parse

    for argv in (["--format", "json", "--state-dir", "/s", "fleet", "list-units", "--full"],
                 ["--debug", "apps:list"], ["run", "web", "python", "--version"]):
        parser, ns = parse(argv)
        full = build_parser().parse_args(argv)
        assert ns == full
        assert "apps:create" not in parser.format_help()  # only the command it names
    assert parse(["run", "web", "python", "--version"])[1].cmd == ["python", "--version"]
    with pytest.raises(SystemExit) as exc:
        parse(["--debug", "--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("shipmate ")
    _, ns = parse(["status"])
    assert ns._command.name == "status"
