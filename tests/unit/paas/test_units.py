from shipmate.paas.resources import ProcessResources
from shipmate.paas.units import escape_value, instance_units, parse_unit_name
from shipmate.spec.container import ContainerSpec
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit

ENV = {"PLAIN": "x", "SPACES": "a b  c", "QUOTES": "say \"hi\" 'there'", "EQ": "a=b=c",
       "NEWLINE": "line1\nline2", "PERCENT": "100%n %i", "BACKSLASH": "C:\\path\\n",
       "EMPTY": "", "DOLLAR": "$HOME ${X}"}


def test_units_per_instance_with_names_and_labels() -> None:
    units = instance_units("my.app", "v3-ab12", "sha256:img", {"web": "", "worker": "node w.js"},
                           {"web": 2, "worker": 1}, {"A": "1"}, "f" * 40)
    assert [u.name for u in units] == ["my.app_web.1_v3-ab12.container",
                                       "my.app_web.2_v3-ab12.container",
                                       "my.app_worker.1_v3-ab12.container"]
    assert parse_unit_name(units[1].name) == ("my.app", "web", 2, "v3-ab12")
    assert parse_unit_name("other.service") is None


def test_config_values_survive_the_unit_file_exactly() -> None:
    (unit,) = instance_units("app", "v1-0000", "sha256:img", {"web": "node server.js"},
                             {"web": 1}, ENV, "a" * 40)
    parsed = parse_unit(unit.name, unit.text)
    spec = container_spec(parsed.file, unit.name, hostname="h", machine_id="m")
    env = spec.env_dict
    for key, value in ENV.items():
        assert env[key] == value, key
    assert env["PORT"] == "5000" and env["DYNO"] == "web.1" and env["GIT_REV"] == "a" * 40
    assert spec.command == ("/bin/sh", "-c", "exec node server.js")
    assert [p.container_port for p in spec.ports] == [5000]
    labels = spec.labels_dict
    assert labels["shipmate.app"] == "app" and labels["shipmate.release"] == "v1-0000"
    assert spec.restart == "always"


def test_escape_value_is_reversible_for_control_characters() -> None:
    assert escape_value("a\tb\x01") == "a\\tb\\x01"
    assert escape_value("50%") == "50%%"


def test_systemd_word_splitting() -> None:
    import pytest

    from shipmate.errors import ValidationError
    from shipmate.spec.unitwords import split_words

    assert split_words('a "b c" \'d\\n\' e\\ f "x\\ty" "\\x41\\101\\u00e9"') == [
        "a", "b c", "d\\n", "e f", "x\ty", "AAé"]
    assert split_words('  "" ') == [""]
    with pytest.raises(ValidationError, match="unterminated"):
        split_words('"open')


def _spec(unit_name: str, text: str) -> ContainerSpec:
    parsed = parse_unit(unit_name, text)
    return container_spec(parsed.file, unit_name, hostname="h", machine_id="m")


def test_resources_and_port_reach_the_container_spec() -> None:
    limits = {"web": ProcessResources(memory=64 * 2**20, cpus=0.5,
                                      memory_reservation=32 * 2**20),
              "worker": ProcessResources()}
    web, worker = instance_units("app", "v1-0000", "sha256:img", {"web": "", "worker": "w"},
                                 {"web": 1, "worker": 1}, {}, "a" * 40, resources=limits,
                                 port=5050)
    assert "Memory=64m\nMemoryReservation=32m\nCPUQuota=50%\n" in web.text
    spec = _spec(web.name, web.text)
    assert (spec.memory, spec.memory_reservation, spec.cpus) == (64 * 2**20, 32 * 2**20, 0.5)
    assert spec.env_dict["PORT"] == "5050" and [p.container_port for p in spec.ports] == [5050]
    assert "RoutePort=5050" in web.text
    plain = _spec(worker.name, worker.text)
    assert (plain.memory, plain.cpus) == (None, None)
    assert "Memory" not in worker.text


def test_a_procfile_command_that_sets_variables_first_runs_through_env() -> None:
    (unit,) = instance_units("app", "v1-0000", "sha256:img", {"web": "FOO=$PORT node s.js"},
                             {"web": 1}, {}, "a" * 40)
    assert _spec(unit.name, unit.text).command == (
        "/bin/sh", "-c", "exec env FOO=$PORT node s.js")


def test_app_instances_run_under_an_init() -> None:
    (unit,) = instance_units("app", "v1-0000", "sha256:img", {"web": "python3 app.py"},
                             {"web": 1}, {}, "a" * 40)
    parsed = parse_unit(unit.name, unit.text)
    assert container_spec(parsed.file, unit.name, hostname="h", machine_id="m").init is True
