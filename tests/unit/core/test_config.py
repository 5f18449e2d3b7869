import dataclasses
from pathlib import Path

import pytest

from shipmate import config
from shipmate.errors import ConfigError


def test_defaults_and_derived_paths() -> None:
    cfg = config.load({})
    assert cfg.state_dir == Path("/var/lib/shipmate")
    assert cfg.socket == Path("/var/lib/shipmate/shipmate.sock")
    assert cfg.cache_dir == Path("/var/lib/shipmate/cache")
    assert cfg.cache_port == 3142
    assert cfg.machine_id


def test_environment_overrides_and_types() -> None:
    cfg = config.load({"SHIPMATE_STATE_DIR": "/tmp/x", "SHIPMATE_CACHE_PORT": "4000",
                       "SHIPMATE_ROUTER": "no", "SHIPMATE_AGENT_TTL": "1.5"})
    assert cfg.socket == Path("/tmp/x/shipmate.sock")
    assert cfg.cache_port == 4000
    assert cfg.router is False
    assert cfg.agent_ttl == 1.5


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        config.load({"SHIPMATE_CACHE_PORT": "lots"})
    assert "SHIPMATE_CACHE_PORT" in str(err.value)
    assert "port of the package cache" in str(err.value)


def test_unknown_store_backend_refused() -> None:
    with pytest.raises(ConfigError, match="unknown store backend"):
        config.load({"SHIPMATE_STORE": "redis"})


@pytest.mark.parametrize("name", ["cache_sndbuf", "cache_local_sndbuf"])
def test_negative_cache_send_buffer_refused(name: str) -> None:
    variable = f"SHIPMATE_{name.upper()}"
    with pytest.raises(ConfigError, match=f"{name} is -1") as err:
        config.load({variable: "-1"})
    assert variable in (err.value.hint or "")
    assert getattr(config.load({variable: "0"}), name) == 0
    assert getattr(config.load({variable: "262144"}), name) == 262144


def test_cache_send_buffer_defaults() -> None:
    # see "Send buffer" in docs/cache.md: autotuning, but a fixed one through loopback
    assert config.load({}).cache_sndbuf == 0
    assert config.load({}).cache_local_sndbuf == 524288


def test_to_env_round_trips() -> None:
    cfg = config.load({"SHIPMATE_STATE_DIR": "/srv/s", "SHIPMATE_SSH": "0"})
    again = config.load(cfg.to_env())
    assert again == cfg


def test_settings_are_typed_fields_declared_once() -> None:
    cfg = config.Config(state_dir=Path("/srv/s"), http_port=8080)
    assert cfg.socket == Path("/srv/s/shipmate.sock")  # derived, as load() does
    assert cfg.http_port == 8080
    assert [s.name for s in config.SETTINGS] == [f.name for f in dataclasses.fields(cfg)]
    http = next(s for s in config.SETTINGS if s.name == "http_port")
    assert (http.type, http.default, http.env) == (int, 80, "SHIPMATE_HTTP_PORT")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.http_port = 81  # type: ignore[misc]


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        config.load({}, nope=1)
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        config.load({}).with_overrides(nope=1)
    assert config.load({}).with_overrides(ssh_port=2022).ssh_port == 2022


def test_every_setting_has_help_and_env() -> None:
    rows = config.describe(config.load({}))
    assert {r["name"] for r in rows} == {s.name for s in config.SETTINGS}
    assert all(r["help"] and r["env"].startswith("SHIPMATE_") for r in rows)
