"""`.container` units: the [Container] section becomes a ContainerSpec."""

from __future__ import annotations

import pytest

from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec, HealthCheck, Mount, PortMapping
from shipmate.spec.unitcontainer import env_file_paths, parse_timespan
from shipmate.spec.units import container_spec, parse_unit

WEB = """\
[Unit]
Description=web %i

[Container]
Image=shipmate/base:bookworm
Exec=python3 -m http.server "%i"
Environment=A=1 "B=two words"
Environment=HOST=%H
EnvironmentFile=-/etc/web.env
PublishPort=127.0.0.1:8080:80
PublishPort=9000/udp
PublishPort=[::1]::81
Volume=/srv/data:/data:ro
Volume=cache:/cache
Label=team=web
HealthCmd=curl -f http://localhost/
HealthInterval=1min 30s
HealthRetries=5
HealthTimeout=500ms
Network=host
User=1000
WorkingDir=/app

[Service]
Restart=always

[X-Fleet]
Conflicts=web@*.container
"""


def test_full_container_unit_becomes_spec() -> None:
    unit = parse_unit("web@1.container", WEB)
    spec = container_spec(unit.file, unit.name, hostname="h1", machine_id="m1",
                          env_files={"A": "from-file", "C": "3"})
    assert spec.name == "shipmate-web_1"
    assert spec.image == "shipmate/base:bookworm"
    assert spec.command == ("python3", "-m", "http.server", "1")
    assert spec.env_dict == {"A": "1", "B": "two words", "C": "3", "HOST": "h1"}
    assert set(spec.ports) == {PortMapping(80, 8080, "127.0.0.1"), PortMapping(9000, 0, "", "udp"),
                               PortMapping(81, 0, "::1")}
    assert set(spec.mounts) == {Mount("/data", "/srv/data", True), Mount("/cache", "cache")}
    assert spec.labels_dict == {"team": "web", "shipmate.unit": "web@1.container"}
    assert spec.health == HealthCheck(("CMD-SHELL", "curl -f http://localhost/"), 90.0, 0.5, 5)
    assert (spec.network, spec.user, spec.working_dir, spec.restart) == (
        "host", "1000", "/app", "always")
    assert env_file_paths(unit.file, unit.name) == [("/etc/web.env", True)]
    assert unit.requirements.conflicts == ("web@*.container",)


def test_container_name_override_and_json_healthcmd() -> None:
    unit = parse_unit("db.container", "[Container]\nImage=img\nContainerName=pg\n"
                      'HealthCmd=["pg_isready", "-q"]\n')
    spec = container_spec(unit.file, unit.name, hostname="h", machine_id="m")
    assert spec.name == "pg"
    assert spec.health is not None and spec.health.test == ("CMD", "pg_isready", "-q")


@pytest.mark.parametrize(("body", "what"), [
    ("Exec=x", "Image="),
    ("Image=i\nPrivileged=true", "unsupported key 'Privileged'"),
    ("Image=i\nPublishPort=abc", "PublishPort"),
    ("Image=i\nPublishPort=70000", "PublishPort"),
    ("Image=i\nVolume=/only", "SOURCE:TARGET"),
    ("Image=i\nVolume=/a:relative", "absolute"),
    ("Image=i\nVolume=../x:/a", "neither"),
    ("Image=i\nEnvironment=novalue", "KEY=VALUE"),
    ('Image=i\nExec=echo "unterminated', "Exec"),
    ("Image=i\nHealthCmd=x\nHealthInterval=soon", "time span"),
    ("Image=i\nContainerName=bad name", "invalid container name"),
])
def test_bad_container_units_refused(body: str, what: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("c.container", f"[Container]\n{body}\n")
    assert what in err.value.message


def test_restart_values_for_containers() -> None:
    with pytest.raises(ValidationError, match="Restart"):
        parse_unit("c.container", "[Container]\nImage=i\n[Service]\nRestart=on-abort\n")


def test_timespans() -> None:
    assert parse_timespan("5") == 5.0
    assert parse_timespan("2m") == 120.0
    assert parse_timespan("1h 1s") == 3601.0
    with pytest.raises(ValueError):
        parse_timespan("")


def test_resource_keys_become_spec_limits() -> None:
    from shipmate.engine.docker_spec import create_args

    def spec_of(lines: str) -> ContainerSpec:
        text = f"[Container]\nImage=x\n{lines}\n"
        return container_spec(parse_unit("a.container", text).file, "a.container",
                              hostname="h", machine_id="m")

    s = spec_of("Memory=256m\nMemoryReservation=128M\nCPUQuota=150%")
    assert (s.memory, s.memory_reservation, s.cpus) == (256 * 2**20, 128 * 2**20, 1.5)
    assert spec_of("MemoryMax=1073741824").memory == 2**30  # systemd's key, bytes
    assert spec_of("MemoryMax=infinity").memory is None
    host = create_args(s).host_config
    assert (host["mem_limit"], host["mem_reservation"], host["nano_cpus"]) == (
        256 * 2**20, 128 * 2**20, 1_500_000_000)
    assert "mem_limit" not in create_args(spec_of("")).host_config
    with pytest.raises(ValidationError, match="Memory= 'lots' is not a size"):
        spec_of("Memory=lots")
    with pytest.raises(ValidationError, match="CPUQuota="):
        spec_of("CPUQuota=fast")


@pytest.mark.parametrize(("value", "init"), [("true", True), ("yes", True), ("false", False),
                                             ("", False)])
def test_run_init(value: str, init: bool) -> None:
    unit = parse_unit("c.container", f"[Container]\nImage=i\nRunInit={value}\n")
    assert container_spec(unit.file, "c.container", hostname="h", machine_id="m").init is init


def test_run_init_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError, match="RunInit='sometimes' is not a boolean"):
        unit = parse_unit("c.container", "[Container]\nImage=i\nRunInit=sometimes\n")
        container_spec(unit.file, "c.container", hostname="h", machine_id="m")
