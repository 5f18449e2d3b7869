"""resource:* records and ports:* mappings (pure parts)."""

import pytest

from shipmate.errors import ValidationError
from shipmate.paas import ports
from shipmate.paas import resources as res
from shipmate.spec.resources import format_cpus, format_memory, parse_cpus, parse_memory

MB = 2**20


def test_sizes_as_dokku_docker_and_systemd_write_them() -> None:
    assert parse_memory("256", bare="m") == 256 * MB  # Dokku: a bare number is megabytes
    assert parse_memory("268435456") == 256 * MB  # a unit file: bytes
    assert parse_memory("1g") == parse_memory("1024M") == parse_memory("1GB") == 2**30
    assert parse_memory("1.5g") == 1536 * MB
    assert format_memory(1536 * MB) == "1536m" and format_memory(2**30) == "1g"
    for bad in ("lots", "-5m", "1x", ""):
        with pytest.raises(ValidationError, match="is not a size"):
            parse_memory(bad)
    with pytest.raises(ValidationError, match="less than 6m"):
        parse_memory("1m")
    assert parse_cpus("0.5") == parse_cpus("50%") == 0.5
    assert format_cpus(1.25) == "125%"
    for bad in ("half", "0", "5000"):
        with pytest.raises(ValidationError):
            parse_cpus(bad)


def test_process_type_values_win_over_defaults_key_by_key() -> None:
    record = res.changed({}, "limit", res.DEFAULT,
                         res.parse_values({"memory": "256", "cpu": "1"}))
    record = res.changed(record, "limit", "worker", res.parse_values({"memory": "64m"}))
    record = res.changed(record, "reserve", "web", res.parse_values({"memory": "32m"}))
    assert res.resolve(record, "worker") == res.ProcessResources(memory=64 * MB, cpus=1.0)
    assert res.resolve(record, "web") == res.ProcessResources(
        memory=256 * MB, cpus=1.0, memory_reservation=32 * MB)
    rows = dict(res.report(record, ["web", "worker"]))
    assert rows["Resource memory limit"] == "256m" and rows["Resource cpu limit"] == "1"
    assert rows["Resource worker memory limit"] == "64m"
    assert rows["Resource web memory reserve"] == "32m"
    assert "Resource web cpu limit" not in rows
    cleared = res.changed(record, "limit", "worker", {}, clear=True)
    assert res.resolve(cleared, "worker").memory == 256 * MB
    assert res.resolve(res.changed(cleared, "limit", res.DEFAULT, {}, clear=True),
                       "worker") == res.ProcessResources()
    with pytest.raises(ValidationError, match="unknown resource"):
        res.parse_values({"disk": "1g"})
    with pytest.raises(ValidationError, match="Invalid process type"):
        res.changed({}, "limit", "../x", {"memory": 1.0})


def test_port_mappings_parse_and_plan() -> None:
    assert str(ports.parse_map("HTTP:80:5000")) == "http:80:5000"
    for bad in ("80:5000", "http:80:x", "http:0:5000", "http:80:70000"):
        with pytest.raises(ValidationError):
            ports.parse_map(bad)
    with pytest.raises(ValidationError, match="scheme 'tcp' is not supported"):
        ports.parse_map("tcp:80:5000")
    maps = [ports.parse_map(m) for m in ("http:80:5050", "http:8080:5050")]
    assert ports.plan(maps, 80) == (5050, 8080)
    assert ports.plan([], 80) == (5000, None)
    assert ports.plan(maps[:1], 8000) == (5050, None)
    with pytest.raises(ValidationError, match="one port"):
        ports.plan([*maps, ports.parse_map("http:80:5000")], 80)
    with pytest.raises(ValidationError, match="one port of its own"):
        ports.plan([*maps, ports.parse_map("http:9090:5050")], 80)


def test_port_changes_set_add_remove_clear() -> None:
    start = [ports.parse_map("http:80:5000")]
    added = ports.changed(start, {"add": ["http:8080:5000"]})
    assert [str(m) for m in added] == ["http:80:5000", "http:8080:5000"]
    assert ports.changed(added, {"remove": ["8080"]}) == start
    assert ports.changed(added, {"remove": ["http:80:5000"]}) == added[1:]
    assert ports.changed(added, {"clear": True}) == []
    assert [str(m) for m in ports.changed(added, {"set": ["http:80:3000"]})] == ["http:80:3000"]
    with pytest.raises(ValidationError, match="list of port mappings"):
        ports.changed(start, {"add": "http:80:1"})


def test_reservations_reach_the_scheduler_through_the_instance_units() -> None:
    from shipmate.paas.units import instance_units
    from shipmate.spec.units import parse_unit

    record = res.changed({}, "reserve", "web", res.parse_values({"memory": "512m", "cpu": "0.5"}))
    units = instance_units("app", "v1", "img", {"web": "serve", "worker": "work"},
                           {"web": 1, "worker": 1}, {}, "abc",
                           resources={p: res.resolve(record, p) for p in ("web", "worker")})
    reqs = {u.name: parse_unit(u.name, u.text).requirements for u in units}
    web, worker = sorted(reqs)
    assert (reqs[web].reserve_memory, reqs[web].reserve_cpus) == (512 * MB, 0.5)
    assert (reqs[worker].reserve_memory, reqs[worker].reserve_cpus) == (0, 0.0)
    assert "[X-Fleet]\nReserveMemory=512m\nReserveCPU=0.5\n" in units[0].text
