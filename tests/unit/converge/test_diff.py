"""Field-level diff: exact, ignores image and engine defaults, notices removals."""

from __future__ import annotations

from typing import Any

from shipmate.converge.diff import (
    APPLIED_LABEL,
    IMAGE_ID_LABEL,
    applied_label,
    diff,
    value_hash,
)
from shipmate.engine.base import ContainerInfo
from shipmate.spec.container import (
    SPEC_HASH_LABEL,
    ContainerSpec,
    Mount,
    PortMapping,
    make_spec,
    spec_hash,
)

IMG = "sha256:" + "a" * 64


def spec(**kw: Any) -> ContainerSpec:
    base: dict[str, Any] = {
        "env": {"NODE_PORT": "8000", "DB_PASSWORD": "hunter2"},
        "ports": [PortMapping(8000, 80)], "command": ["node", "server.js"],
        "mounts": [Mount("/data", "/srv/data")], "restart": "unless-stopped",
    }
    base.update(kw)
    return make_spec("web", "example/site:1.0", **base)


def created_from(s: ContainerSpec, *, running: bool = True, **raw_over: Any) -> ContainerInfo:
    """What docker inspect reports for a container Shipmate created from ``s``: the image's
    env and labels merged in, engine defaults present."""
    labels = {"maintainer": "image-default", "org.opencontainers.image.title": "site",
              **s.labels_dict, SPEC_HASH_LABEL: spec_hash(s), APPLIED_LABEL: applied_label(s),
              IMAGE_ID_LABEL: IMG, "shipmate.managed": "1"}
    env = {"PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8", **s.env_dict}
    raw: dict[str, Any] = {
        "Config": {"Cmd": list(s.command or ["image-default"]), "Entrypoint": None,
                   "Hostname": "0123456789ab", "Env": [f"{k}={v}" for k, v in env.items()]},
        "HostConfig": {"RestartPolicy": {"Name": s.restart, "MaximumRetryCount": 0},
                       "Binds": [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"
                                 for m in s.mounts]},
    }
    for key, value in raw_over.items():
        raw[key] = {**raw[key], **value}
    ports = tuple(PortMapping(p.container_port, p.host_port or 49153, p.host_ip or "0.0.0.0",
                              p.protocol) for p in s.ports) if running else ()
    return ContainerInfo(id="c1", name=s.name, image=s.image, image_id=IMG,
                         state="running" if running else "exited", labels=labels, env=env,
                         ports=ports, raw=raw)


def fields(changes: tuple[Any, ...]) -> list[str]:
    return [c.field for c in changes]


def test_unchanged_container_has_no_diff_despite_image_and_engine_defaults() -> None:
    s = spec()
    assert diff(s, created_from(s), image_id=IMG) == ()


def test_undeclared_command_uses_image_default_and_is_not_a_change() -> None:
    s = spec(command=None)
    assert diff(s, created_from(s), image_id=IMG) == ()


def test_engine_picked_host_port_is_not_a_change() -> None:
    s = spec(ports=[PortMapping(8000)])
    assert diff(s, created_from(s), image_id=IMG) == ()


def test_changed_env_value_forces_replace_and_secret_is_hashed() -> None:
    old = spec()
    new = spec(env={"NODE_PORT": "8001", "DB_PASSWORD": "swordfish"})
    changes = diff(new, created_from(old), image_id=IMG,
                   is_secret=lambda k: "PASSWORD" in k)
    by = {c.field: c for c in changes}
    assert set(by) == {"env.NODE_PORT", "env.DB_PASSWORD"}
    assert (by["env.NODE_PORT"].old, by["env.NODE_PORT"].new) == ("8000", "8001")
    pw = by["env.DB_PASSWORD"]
    assert (pw.old, pw.new) == (value_hash("hunter2"), value_hash("swordfish"))
    assert "hunter2" not in repr(changes) and "swordfish" not in repr(changes)
    assert all(c.replace for c in changes)


def test_removed_env_var_is_noticed() -> None:
    old = spec()
    new = spec(env={"NODE_PORT": "8000"})
    changes = diff(new, created_from(old), image_id=IMG, is_secret=lambda k: "PASS" in k)
    assert fields(changes) == ["env.DB_PASSWORD"]
    assert changes[0].new is None and changes[0].old == value_hash("hunter2")


def test_removed_port_is_noticed() -> None:
    old = spec(ports=[PortMapping(8000, 80), PortMapping(9000, 9000)])
    new = spec(ports=[PortMapping(8000, 80)])
    changes = diff(new, created_from(old), image_id=IMG)
    assert fields(changes) == ["ports"]
    assert changes[0].old == "80:8000/tcp, 9000:9000/tcp" and changes[0].new == "80:8000/tcp"


def test_moved_tag_is_noticed_by_image_id() -> None:
    s = spec()
    changes = diff(s, created_from(s), image_id="sha256:" + "b" * 64)
    assert fields(changes) == ["image"] and changes[0].replace
    assert diff(s, created_from(s), image_id=None) == ()  # unknown yet: no claim


def test_restart_policy_is_in_place() -> None:
    old = spec()
    changes = diff(spec(restart="always"), created_from(old), image_id=IMG)
    assert fields(changes) == ["restart"] and not changes[0].replace


def test_restart_updated_in_place_is_not_a_change_again() -> None:
    old = spec()
    info = created_from(old, HostConfig={"RestartPolicy": {"Name": "always"}})
    assert diff(spec(restart="always"), info, image_id=IMG) == ()


def test_stopped_container_needs_a_start_only() -> None:
    s = spec()
    changes = diff(s, created_from(s, running=False), image_id=IMG)
    assert fields(changes) == ["state"] and not changes[0].replace


def test_drift_behind_shipmates_back_is_noticed() -> None:
    s = spec()
    info = created_from(s, Config={"Cmd": ["sh"]})
    assert fields(diff(s, info, image_id=IMG)) == ["command"]
    info = created_from(s, HostConfig={"Binds": ["/elsewhere:/data:rw"]})
    assert fields(diff(s, info, image_id=IMG)) == ["mounts"]


def test_container_without_applied_label_is_compared_by_hash() -> None:
    s = spec()
    info = created_from(s)
    bare = ContainerInfo(**{**info.__dict__, "labels": {SPEC_HASH_LABEL: "0" * 64}})
    assert "spec" in fields(diff(s, bare, image_id=IMG))
    same = ContainerInfo(**{**info.__dict__, "labels": {SPEC_HASH_LABEL: spec_hash(s)}})
    assert diff(s, same, image_id=IMG) == ()


def test_resource_limits_are_diffed_and_unset_ones_keep_old_hashes() -> None:
    plain = spec()
    assert "memory" not in plain.to_json() and "cpus" not in plain.to_json()
    limited = spec(memory=64 * 2**20, cpus=0.5)
    assert spec_hash(limited) != spec_hash(plain)
    # Added, changed and removed limits are all seen (the applied view records them).
    assert fields(diff(limited, created_from(plain), image_id=IMG)) == ["cpus", "memory"]
    assert fields(diff(plain, created_from(limited), image_id=IMG)) == ["cpus", "memory"]
    host = {"Memory": 64 * 2**20, "NanoCpus": 500_000_000, "MemoryReservation": 0}
    assert diff(limited, created_from(limited, HostConfig=host), image_id=IMG) == ()
    # Changed behind Shipmate's back (docker update): the engine's value is checked too.
    drift = diff(limited, created_from(limited, HostConfig={**host, "Memory": 2**30}),
                 image_id=IMG)
    assert [(c.field, c.old, c.new) for c in drift] == [
        ("memory", "1073741824", str(64 * 2**20))]
    assert drift[0].replace


def test_init_is_a_replace_and_a_label_from_before_the_field_means_no_init() -> None:
    s = spec()
    old_label = applied_label(s).replace(',"init":false', "")  # written before `init` existed
    assert '"init"' not in old_label
    info = created_from(s)
    info = ContainerInfo(**{**info.__dict__, "labels": {**info.labels,
                                                        APPLIED_LABEL: old_label}})
    assert diff(s, info, image_id=IMG) == ()
    (change,) = diff(spec(init=True), info, image_id=IMG)
    assert (change.field, change.old, change.new, change.replace) == ("init", "false", "true",
                                                                      True)


def test_init_switched_behind_shipmates_back_is_noticed() -> None:
    s = spec(init=True)
    assert diff(s, created_from(s, HostConfig={"Init": True}), image_id=IMG) == ()
    assert fields(diff(s, created_from(s, HostConfig={"Init": None}), image_id=IMG)) == ["init"]
