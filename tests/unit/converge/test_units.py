"""ContainerSpec -> .container unit text -> ContainerSpec round trips exactly; which units a
manifest needs and what to do with the registry."""

from __future__ import annotations

import pytest

from shipmate.converge.units import (
    DeclaredUnit,
    manifest_units,
    owner_of,
    plan_units,
    quote_word,
    render_unit,
    unit_name,
    unit_spec,
)
from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec, HealthCheck, Mount, PortMapping, make_spec
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit
from shipmate.spec.unitwords import split_words
from tests.unit.converge.helpers import STACK, manifest

UNIT = "manifest-stack-web.container"
NASTY = [
    "two words", 'say "hi"', "it's", "back\\slash", "line one\nline two", "tab\there",
    "100%", "%n %H %% %%%", "", " padded ", "trailing\\", "$HOME ${X} `id`", "a=b=c",
    "unicode ✓ \u2028 sep", "\x01ctl\x7f", "#not a comment", ";nor this", "[x]", "\\n literal",
]


def roundtrip(spec: ContainerSpec, **kw: str) -> ContainerSpec:
    text = render_unit(spec, **kw)
    unit = parse_unit(UNIT, text)  # what the daemon checks at submit
    return container_spec(unit.file, UNIT, hostname="h1", machine_id="m1")


@pytest.mark.parametrize("word", NASTY)
def test_quote_word_survives_word_splitting(word: str) -> None:
    assert split_words(quote_word(word)) == [word]


@pytest.mark.parametrize("value", NASTY)
def test_env_and_label_values_round_trip(value: str) -> None:
    spec = unit_spec(make_spec("web", "img:1", env={"V": value, "OTHER": "x"},
                               labels={"note": value}), UNIT)
    assert roundtrip(spec) == spec


def test_full_spec_round_trips() -> None:
    spec = unit_spec(make_spec(
        "web-1", "registry.local:5000/team/app:2.1",
        command=["bash", "-c", 'echo "$GREETING" > /tmp/x; exec sleep 100%'],
        entrypoint=["/usr/bin/env", "--"],
        env={"GREETING": "hello world", "QUOTED": "she said \"it's\"", "MULTI": "a\nb\n",
             "PCT": "%i%%", "EMPTY": ""},
        ports=[PortMapping(80, 8080), PortMapping(53, 5353, "127.0.0.1", "udp"),
               PortMapping(443), PortMapping(9000, 0, "::1"), PortMapping(22, 2222, "::")],
        mounts=[Mount("/data", "/srv/data"), Mount("/cache", "cache-vol", True),
                Mount("/etc/app", "/etc/app", read_only=False)],
        labels={"team": "core", "desc": "two words"},
        restart="on-failure",
        health=HealthCheck(("CMD-SHELL", "curl -fs http://localhost/ || exit 1"),
                           interval=0.5, timeout=3, retries=7, start_period=1.25),
        network="host", hostname="web%i", working_dir="/srv/my app", user="1000:1000",
    ), UNIT)
    assert roundtrip(spec, machine_id="m1") == spec


@pytest.mark.parametrize("health", [
    HealthCheck(("CMD", "test", "-f", "/tmp/ready ok")),
    HealthCheck(("CMD", "sh", "-c", "[ -f /x ] && echo '%n'\nnext")),
    HealthCheck(("CMD-SHELL", "pg_isready -U 'my user'"), interval=10.0, retries=0),
])
def test_health_checks_round_trip(health: HealthCheck) -> None:
    spec = unit_spec(make_spec("web", "img", health=health), UNIT)
    assert roundtrip(spec) == spec


@pytest.mark.parametrize("restart", ["no", "always", "on-failure"])
def test_restart_round_trips(restart: str) -> None:
    spec = unit_spec(make_spec("web", "img", restart=restart), UNIT)
    assert roundtrip(spec) == spec


def test_machine_id_and_owner_are_written() -> None:
    spec = unit_spec(make_spec("web", "img"), UNIT)
    text = render_unit(spec, machine_id="m-42", owner={"Manifest": "stack"})
    unit = parse_unit(UNIT, text)
    assert unit.requirements.machine_id == "m-42"
    assert owner_of(text) == "stack"
    assert owner_of(render_unit(spec)) is None


@pytest.mark.parametrize(("spec_kw", "message"), [
    ({"command": ()}, "empty Exec"),
    ({"user": " root"}, "cannot be written"),
    ({"working_dir": "/a\nb"}, "cannot be written"),
    ({"health": HealthCheck(("CMD-SHELL", '["a", "b"]'))}, "HealthCmd"),
    ({"health": HealthCheck(("CMD-SHELL", "a\nb"))}, "cannot be written"),
    ({"env": {"BIG": "x" * 3000}}, "longer than"),
])
def test_unrepresentable_specs_are_refused(spec_kw: dict[str, object], message: str) -> None:
    spec = make_spec("web", "img", **spec_kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=message):
        render_unit(spec)


def test_manifest_units_are_named_pinned_and_ordered() -> None:
    m = manifest(STACK)
    units = manifest_units(m, "machine-7")
    assert [u.name for u in units] == [unit_name("stack", n) for n in ("db", "api", "worker")]
    api = units[1]
    assert api.depends_on == ("manifest-stack-db.container",)
    unit = parse_unit(api.name, api.text)
    assert unit.hash == api.hash and unit.requirements.machine_id == "machine-7"
    spec = container_spec(unit.file, api.name, hostname="h", machine_id="machine-7")
    assert spec == unit_spec(m.container("api").spec, api.name)
    assert manifest_units(m, "machine-7") == units  # deterministic: same text, same hash


def test_plan_units_sorts_new_changed_unchanged_and_pruned() -> None:
    declared = [DeclaredUnit("a.container", "a", "", "h1"),
                DeclaredUnit("b.container", "b", "", "h2"),
                DeclaredUnit("c.container", "c", "", "h3")]
    existing = {"b.container": "h2", "c.container": "old", "d.container": "h4",
                "other.container": "h5"}
    plan = plan_units(declared, existing, ["b.container", "c.container", "d.container"],
                      prune=False)
    assert (plan.submit, plan.replace, plan.unchanged) == (
        ("a.container",), ("c.container",), ("b.container",))
    assert plan.prune == () and plan.orphans == ("d.container",)
    pruned = plan_units(declared, existing, ["d.container"], prune=True)
    assert pruned.prune == ("d.container",) and pruned.orphans == ()


def test_shell_checks_starting_with_a_bracket_and_unless_stopped_round_trip() -> None:
    spec = make_spec("web-1", "img", health=HealthCheck(("CMD-SHELL", "[ -f /x ]")),
                     restart="unless-stopped")
    unit = parse_unit(UNIT, render_unit(spec))
    back = container_spec(unit.file, UNIT, hostname="h", machine_id="m")
    assert back.health is not None and back.health.test == ("CMD-SHELL", "[ -f /x ]")
    assert back.restart == "unless-stopped"
