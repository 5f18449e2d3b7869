"""Resource limits in manifests (``memory``, ``memory_reservation``, ``cpus``): parsed into
the spec, refused with file:line when malformed, written into ``--via-daemon`` units, and
absent from (so not changing) the spec hash of manifests that do not use them."""

from __future__ import annotations

import pytest

from shipmate.converge.units import render_unit, unit_spec
from shipmate.spec.container import spec_hash
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit
from tests.unit.spec.test_manifest import FULL, parse, refused

ENV = {"/srv/app/web.env": "DB_URL=a\n"}


def _spec(limits: str) -> tuple[int | None, int | None, float | None]:
    m = parse(f"""\
        containers:
          web:
            image: img:1
            {limits}
        """)
    spec = m.container("web").spec
    return spec.memory, spec.memory_reservation, spec.cpus


@pytest.mark.parametrize(("limits", "want"), [
    ("memory: 256m", (256 * 2**20, None, None)),
    ("memory: 1.5G", (3 * 2**29, None, None)),
    ("memory: 536870912", (2**29, None, None)),  # a bare number is bytes, as in Docker's API
    ("memory: 512MB", (2**29, None, None)),
    ("{memory: 1g, memory_reservation: 512m}", (2**30, 2**29, None)),
    ("cpus: 0.5", (None, None, 0.5)),
    ("cpus: 2", (None, None, 2.0)),
    ('cpus: "150%"', (None, None, 1.5)),  # CPUQuota='s way
])
def test_limits_go_into_the_spec(limits: str, want: tuple[object, ...]) -> None:
    if limits.startswith("{"):
        limits = limits[1:-1].replace(", ", "\n            ")
    assert _spec(limits) == want


@pytest.mark.parametrize(("limits", "words"), [
    ("memory: lots", "stack.yaml:4: container web: memory 'lots' is not a size"),
    ("memory: 512", "stack.yaml:4: container web: memory '512' is less than 6m"),
    ("memory: true", "stack.yaml:4: container web: memory must be a string or a number"),
    ("memory: [1g]", "stack.yaml:4: container web: memory must be a string or a number"),
    ("cpus: 0", "stack.yaml:4: container web: cpus '0' is out of range"),
    ("cpus: half", "stack.yaml:4: container web: cpus 'half' is not a number of CPUs"),
    ("memory_reservation: 2g\n    memory: 1g",
     "stack.yaml:4: container web: memory_reservation 2g is more than memory 1g"),
    ("mem_limit: 1g", "stack.yaml:4: container web: unknown key 'mem_limit'"),
    ("cpu_quota: 50000", "stack.yaml:4: container web: unknown key 'cpu_quota'"),
])
def test_malformed_limits_are_refused_naming_file_and_line(limits: str, words: str) -> None:
    text = "containers:\n  web:\n    image: img:1\n    " + limits + "\n"
    message = refused(text)
    assert words in message, message


def test_compose_names_say_which_key_to_write() -> None:
    message = refused("containers:\n  web:\n    image: img:1\n    mem_limit: 1g\n")
    assert "write memory: instead" in message


def test_manifests_without_limits_keep_their_spec_hashes() -> None:
    # the hashes of this manifest before resource keys existed: no container is replaced
    m = parse(FULL, ENV)
    assert {d.name: spec_hash(d.spec) for d in m.containers} == {
        "db": "8c6a0b4f7540018e042951772beecfef94d466d9d0d673f16fb6f50852081b8c",
        "web": "2b9e3afe4ef6ebcce3fb59462d29b6b39bcb34d5e2afff18ec5222dacaafacb3"}
    limited = parse(FULL.replace("image: shipmate/python:3.11\n",
                                 "image: shipmate/python:3.11\n        memory: 64m\n"), ENV)
    assert spec_hash(limited.container("db").spec) != spec_hash(m.container("db").spec)


def test_limits_and_init_reach_via_daemon_units() -> None:
    m = parse("""\
        containers:
          web:
            image: img:1
            memory: 256m
            memory_reservation: 128m
            cpus: 0.25
            init: true
        """)
    name = "manifest-stack-web.container"
    spec = unit_spec(m.container("web").spec, name)
    text = render_unit(spec)
    assert "Memory=256m\n" in text and "MemoryReservation=128m\n" in text
    assert "CPUQuota=25%%\n" in text and "RunInit=true\n" in text
    assert container_spec(parse_unit(name, text).file, name, hostname="h",
                          machine_id="m") == spec
    plain = unit_spec(parse("containers:\n  web:\n    image: img:1\n").container("web").spec,
                      name)
    assert not any(k in render_unit(plain) for k in ("Memory", "CPUQuota", "RunInit"))
