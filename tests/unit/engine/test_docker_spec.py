"""ContainerSpec -> Docker create arguments, and inspect output -> ContainerInfo (pure)."""

from __future__ import annotations

import pytest

from shipmate.engine import docker_spec
from shipmate.errors import ValidationError
from shipmate.spec.container import (
    MANAGED_LABEL,
    SPEC_HASH_LABEL,
    HealthCheck,
    Mount,
    PortMapping,
    make_spec,
    spec_hash,
)


def full_spec():
    return make_spec(
        "web.1", "shipmate/node:18",
        command=["node", "server.js"], entrypoint=["/bin/sh", "-c"],
        env={"PORT": "5000", "A": "x=y"},
        ports=[PortMapping(5000, 8080, "127.0.0.1"), PortMapping(53, 0, "", "udp"),
               PortMapping(5000, 8081)],
        mounts=[Mount(target="/data", source="/srv/data", read_only=True),
                Mount(target="/cache", source="appcache")],
        labels={"app": "web"}, restart="on-failure",
        health=HealthCheck(("curl -f http://localhost:5000/",), interval=1.5, timeout=0.5,
                           retries=4, start_period=2),
        network="shipmate", hostname="web1", working_dir="/app", user="1000:1000",
    )


def test_every_field_is_mapped():
    spec = full_spec()
    args = docker_spec.create_args(spec, {"shipmate.release": "v3"})
    c, h = args.create, args.host_config
    assert c["image"] == "shipmate/node:18" and c["name"] == "web.1"
    assert c["command"] == ["node", "server.js"]
    assert c["entrypoint"] == ["/bin/sh", "-c"]
    assert c["environment"] == ["A=x=y", "PORT=5000"]
    assert c["labels"] == {"app": "web", SPEC_HASH_LABEL: spec_hash(spec), MANAGED_LABEL: "1",
                           "shipmate.release": "v3"}
    assert c["ports"] == [(53, "udp"), (5000, "tcp")]
    assert (c["hostname"], c["working_dir"], c["user"]) == ("web1", "/app", "1000:1000")
    assert c["healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost:5000/"], "Interval": 1_500_000_000,
        "Timeout": 500_000_000, "Retries": 4, "StartPeriod": 2_000_000_000}
    assert h["port_bindings"] == {
        "5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                     {"HostIp": "", "HostPort": "8081"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}]}
    assert sorted(h["binds"]) == ["/srv/data:/data:ro", "appcache:/cache:rw"]
    assert h["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 0}
    assert h["network_mode"] == "shipmate"


def test_minimal_spec_leaves_optional_fields_unset():
    args = docker_spec.create_args(make_spec("one", "shipmate/base:bookworm"))
    assert args.create["command"] is None and args.create["entrypoint"] is None
    assert args.create["healthcheck"] is None
    assert "network_mode" not in args.host_config
    assert args.host_config["restart_policy"] == {"Name": "no"}


@pytest.mark.parametrize(("test", "expected"), [
    (("CMD", "true"), ["CMD", "true"]),
    (("CMD-SHELL", "exit 0"), ["CMD-SHELL", "exit 0"]),
    (("pg_isready",), ["CMD-SHELL", "pg_isready"]),
    (("pg_isready", "-q"), ["CMD", "pg_isready", "-q"]),
    ((), ["NONE"]),
])
def test_health_test_forms(test, expected):
    assert docker_spec.health_test(test) == expected


def test_mount_with_colon_is_refused():
    with pytest.raises(ValidationError):
        docker_spec.bind(Mount(target="/x", source="/a:b"))


def test_extra_labels_cannot_be_hidden_by_spec_labels_but_override_them():
    spec = make_spec("one", "img", labels={SPEC_HASH_LABEL: "forged"})
    labels = docker_spec.container_labels(spec, {})
    assert labels[SPEC_HASH_LABEL] == spec_hash(spec)


RAW = {
    "Id": "abc123", "Name": "/web.1", "Image": "sha256:feed",
    "State": {"Status": "running", "Pid": 42, "ExitCode": 0, "StartedAt": "2024-05-01T00:00:00Z",
              "Health": {"Status": "healthy"}},
    "Config": {"Image": "shipmate/node:18", "Labels": {"app": "web"},
               "Env": ["PORT=5000", "EMPTY=", "EQ=a=b"]},
    "NetworkSettings": {
        "IPAddress": "",
        "Networks": {"shipmate": {"IPAddress": "172.18.0.5"}},
        "Ports": {"5000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"},
                               {"HostIp": "::", "HostPort": "49153"}],
                  "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
                  "9000/tcp": None},
    },
}


def test_container_info_digests_inspect_output():
    info = docker_spec.container_info(RAW)
    assert (info.id, info.name, info.image, info.image_id) == (
        "abc123", "web.1", "shipmate/node:18", "sha256:feed")
    assert info.running and info.pid == 42 and info.health == "healthy"
    assert info.env == {"PORT": "5000", "EMPTY": "", "EQ": "a=b"}
    assert info.ip_address == "172.18.0.5"
    assert info.ports == (PortMapping(53, 5353, "127.0.0.1", "udp"),
                          PortMapping(5000, 49153, "0.0.0.0"))


def test_container_info_without_health_or_network():
    info = docker_spec.container_info({"Id": "x", "State": {"Status": "exited", "ExitCode": 3}})
    assert info.health is None and info.exit_code == 3 and info.ports == ()
    assert not info.running


def test_event_and_load_messages():
    event = docker_spec.engine_event({"Type": "container", "Action": "start",
                                      "Actor": {"ID": "c1", "Attributes": {"name": "web.1"}},
                                      "time": 1, "timeNano": 1_500_000_000})
    assert (event.type, event.action, event.id, event.time) == ("container", "start", "c1", 1.5)
    assert event.attributes == {"name": "web.1"}
    assert docker_spec.loaded_images([{"stream": "Loaded image: shipmate/x:1\n"},
                                      {"stream": "Loaded image ID: sha256:ab\n"},
                                      {"status": "Loading layer"}]) == ["shipmate/x:1", "sha256:ab"]


def test_init_runs_dockers_init_as_pid_1_and_keeps_old_hashes():
    plain = make_spec("one", "shipmate/base:bookworm")
    assert "init" not in docker_spec.create_args(plain).host_config
    with_init = make_spec("one", "shipmate/base:bookworm", init=True)
    assert docker_spec.create_args(with_init).host_config["init"] is True
    assert spec_hash(with_init) != spec_hash(plain)
    # A spec without init hashes as it did before the field existed: an upgrade does not
    # replace every container it finds.
    assert spec_hash(plain) == \
        "3f4cf2a1b92389dac85f10a84a093e3e3f952410aec2d83021bc0b78bcb23233"  # before `init`
