"""Unit files: syntax, names, [X-Fleet] requirements, fleet's invalid combinations, hash."""

from __future__ import annotations

import hashlib

import pytest

from shipmate.errors import ValidationError
from shipmate.spec.unitfile import parse, serialize
from shipmate.spec.unitname import expand, parse_unit_name
from shipmate.spec.unitreqs import REFUSED_PAIRS
from shipmate.spec.units import instantiate, parse_unit

CODE_IT = """\
[Unit]
Description=Code.it %i
# a comment
; another comment
After=docker.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker kill code.it.1
ExecStart=/usr/bin/docker run --name code.it.1 \\
  -p 8080:80 img
ExecStartPost=/usr/bin/etcdctl set /services/code.it/1 up
ExecStopPost=/usr/bin/etcdctl rm /services/code.it/1

[X-Fleet]
X-Conflicts=code.it.*.service
"""


def svc(xfleet: str = "", name: str = "a.service") -> str:
    return f"[Service]\nExecStart=/bin/true\n[X-Fleet]\n{xfleet}\n"


def test_walkthrough_unit_parses_with_order_and_repeats() -> None:
    unit = parse_unit("code.it.1.service", CODE_IT)
    assert unit.file.sections == ("Unit", "Service", "X-Fleet")
    assert unit.file.values("Service", "ExecStart") == [
        "/usr/bin/docker run --name code.it.1    -p 8080:80 img"]
    names = [o.name for o in unit.file.section("Service")]
    assert names == ["ExecStartPre", "ExecStart", "ExecStartPost", "ExecStopPost"]
    assert unit.requirements.conflicts == ("code.it.*.service",)
    assert unit.description == "Code.it %i"


def test_repeated_keys_kept_in_order_and_last_wins() -> None:
    uf = parse("[Service]\nEnvironment=A=1\nEnvironment=B=2\nExecStart=x\nEnvironment=A=3\n")
    assert uf.values("Service", "Environment") == ["A=1", "B=2", "A=3"]
    assert uf.value("Service", "Environment") == "A=3"


def test_hash_is_sha1_of_go_systemd_serialization() -> None:
    unit = parse_unit("code.it.1.service", CODE_IT)
    expected = (
        "[Unit]\nDescription=Code.it %i\nAfter=docker.service\nRequires=docker.service\n\n"
        "[Service]\nExecStartPre=-/usr/bin/docker kill code.it.1\n"
        "ExecStart=/usr/bin/docker run --name code.it.1 \\\n  -p 8080:80 img\n"
        "ExecStartPost=/usr/bin/etcdctl set /services/code.it/1 up\n"
        "ExecStopPost=/usr/bin/etcdctl rm /services/code.it/1\n\n"
        "[X-Fleet]\nX-Conflicts=code.it.*.service\n"
    )
    assert unit.file.serialize() == expected
    assert unit.hash == hashlib.sha1(expected.encode()).hexdigest()


def test_fleet_hash_test_vectors() -> None:
    # fleet unit/unit_test.go TestUnitHash
    assert parse("[Service]\nExecStart=/bin/sleep 100\n").hash == (
        "1c6fb6f3684bafb0c173d8b8b957ceff031180c1")
    # fleet TestDeserializeEscapedMultilines: multi-line values are kept as written
    uf = parse('[Service]\nExecStart=echo \\\n  "pi\\\n  ng"\nExecStop=\\\necho "po\\\nng"\n')
    assert uf.options[0].serialized == 'echo \\\n  "pi\\\n  ng"'
    assert uf.options[1].serialized == '\\\necho "po\\\nng"'
    assert uf.value("Service", "ExecStart") == 'echo    "pi   ng"'
    assert uf.value("Service", "ExecStop") == 'echo "po ng"'
    assert parse(uf.serialize()) == uf


def test_hash_ignores_comments_and_spacing_but_not_values() -> None:
    a = parse("[Service]\nExecStart = /bin/a\n\n# c\n")
    b = parse("; top\n[Service]\nExecStart=/bin/a")
    c = parse("[Service]\nExecStart=/bin/b\n")
    assert a.hash == b.hash != c.hash


def test_repeated_sections_are_merged_on_serialize() -> None:
    uf = parse("[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n")
    assert serialize(uf.options) == "[Unit]\nA=1\nC=3\n\n[Service]\nB=2\n"


@pytest.mark.parametrize(("text", "line", "what"), [
    ("[Service]\nExecStart=x\nthis is not an option\n", "line 3", "Name=Value"),
    ("ExecStart=x\n", "line 1", "outside"),
    ("[Service\nExecStart=x\n", "line 1", "unterminated"),
    ("[Service] junk\nExecStart=x\n", "line 1", "garbage"),
    ("[Service]\n=x\n", "line 2", "option name"),
])
def test_malformed_lines_name_their_line(text: str, line: str, what: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("a.service", text)
    assert line in err.value.message and what in err.value.message


@pytest.mark.parametrize(("name", "what"), [
    ("a.socket", "not supported"),
    ("a.timer", "not supported"),
    ("a.foo", "invalid unit type"),
    ("noext", 'must contain "."'),
    ("@x.service", 'cannot start with "@"'),
    ("a/b.service", "invalid character"),
    ("a b.service", "invalid character"),
    ("x" * 300 + ".service", "maximum length"),
])
def test_bad_names_are_refused(name: str, what: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit(name, "[Service]\nExecStart=/bin/true\n")
    assert what in err.value.message


def test_service_without_execstart_and_unknown_section_refused() -> None:
    with pytest.raises(ValidationError, match="ExecStart"):
        parse_unit("a.service", "[Unit]\nDescription=x\n")
    with pytest.raises(ValidationError, match=r"unknown section \[Servce\]"):
        parse_unit("a.service", "[Servce]\nExecStart=x\n")
    with pytest.raises(ValidationError, match="Restart"):
        parse_unit("a.service", "[Service]\nExecStart=x\nRestart=sometimes\n")


def test_xfleet_options_and_deprecated_names() -> None:
    reqs = parse_unit("a.service", svc(
        'X-ConditionMachineMetadata=region=us-east\n'
        'MachineMetadata="region=us-west" "disk=ssd"\n'
        "X-ConditionMachineOf=db.service\n"
        "Conflicts=web.* api.*\nConflicts=\"cache.*\"\nX-Conflicts=old.*\n")).requirements
    assert reqs.metadata_dict == {"disk": ("ssd",), "region": ("us-east", "us-west")}
    assert reqs.machine_of == ("db.service",)
    assert set(reqs.conflicts) == {"web.*", "api.*", "cache.*", "old.*"}
    replacing = parse_unit("r.service", svc("Replaces=legacy.service\nMachineMetadata=a=b\n"))
    assert replacing.requirements.replaces == ("legacy.service",)
    machine = parse_unit("b.service", svc("X-ConditionMachineID=abc\nMachineID=def\n"))
    assert machine.requirements.machine_id == "def"
    assert parse_unit("g.service", svc("Global=true\nMachineMetadata=a=b\n")).requirements.global_


@pytest.mark.parametrize(("xfleet", "what"), [
    ("Global=true\nMachineOf=x.service", "Global cannot be used with MachineOf: "),
    ("Global=true\nConflicts=x*", "Global cannot be used with Conflicts: "),
    ("Global=true\nReplaces=x.service", "Global cannot be used with Replaces: "),
    ("MachineID=m1\nGlobal=yes", "MachineID cannot be used with Global: "),
    ("MachineID=m1\nMachineOf=x.service", "MachineID cannot be used with MachineOf: "),
    ("MachineID=m1\nConflicts=x*", "MachineID cannot be used with Conflicts: "),
    ("MachineID=m1\nReplaces=x.service", "MachineID cannot be used with Replaces: "),
    ("X-ConditionMachineBootID=m1\nReplaces=x.service", "MachineID cannot be used with Replaces"),
    ("Conflicts=x*\nReplaces=y.service", "Conflicts cannot be used with Replaces: "),
    ("X-Conflicts=x*\nReplaces=y.service", "Conflicts cannot be used with Replaces: "),
    ("MachineOf=db.service\nConflicts=db.*", "unresolvable"),
    ("MachineOf=db.service\nReplaces=db.service", "matches Replaces 'db.service'"),
    ("Replaces=foo.service\nReplaces=bar.service\nMachineOf=bar.service", "unresolvable"),
    ("Frobnicate=1", "unrecognized requirement"),
    ("MachineMetadata=oops", "key=value"),
    ("Global=maybe", "not a boolean"),
    ("Conflicts=a[b", "malformed glob"),
    ("MachineOf=a*.service", "not a valid unit name"),
])
def test_invalid_combinations_refused(xfleet: str, what: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("a.service", svc(xfleet))
    assert what in err.value.message
    assert err.value.message.startswith("a.service: ")


@pytest.mark.parametrize("xfleet", [
    "Global=true\nMachineMetadata=region=eu",
    "Replaces=old.service\nMachineMetadata=region=eu",
    "MachineOf=db.service\nConflicts=web.*",
    "MachineOf=db.service\nReplaces=old.service",
    "MachineID=m1\nMachineMetadata=region=eu",
    "Global=false\nReplaces=old.service",
])
def test_combinations_fleet_accepts_are_accepted(xfleet: str) -> None:
    parse_unit("a.service", svc(xfleet))


def test_every_refused_pair_says_why_and_what_to_do() -> None:
    for first, second, why in REFUSED_PAIRS:
        values = {"MachineID": "m1", "MachineOf": "p.service", "Conflicts": "c*",
                  "Replaces": "r.service", "Global": "true"}
        text = svc(f"{first}={values[first]}\n{second}={values[second]}")
        with pytest.raises(ValidationError) as err:
            parse_unit("a.service", text)
        assert err.value.message == f"a.service: {first} cannot be used with {second}: {why}"
        assert err.value.hint and f"{first}=" in err.value.hint


def test_specifiers_in_requirements_and_templates() -> None:
    template = parse_unit("web@.service", svc("Conflicts=%p@*.service\nMachineOf=db@%i.service"))
    assert template.is_template
    inst = instantiate(template, "web@2.service")
    assert inst.requirements.machine_of == ("db@2.service",)
    assert inst.requirements.conflicts == ("web@*.service",)
    assert inst.text == template.text and inst.hash == template.hash
    with pytest.raises(ValidationError):
        instantiate(template, "api@2.service")


def test_expand_specifiers() -> None:
    text = "%n %N %p %i %H %m %% %x"
    assert expand(text, "web@3.service", "host1", "mid") == (
        "web@3.service web@3 web 3 host1 mid % %x")
    assert expand("%H", "a.service") == "%H"
    info = parse_unit_name("web@3.service")
    assert (info.template, info.instance, info.is_instance) == ("web@.service", "3", True)


def test_continuation_and_long_lines() -> None:
    uf = parse("[Service]\nExecStart=/bin/echo \\\n# not a comment inside\\\n  end\n")
    assert uf.value("Service", "ExecStart") == "/bin/echo  # not a comment inside   end"
    with pytest.raises(ValidationError, match="line 2: longer"):
        parse("[Service]\nExecStart=" + "x" * 3000 + "\n")


@pytest.mark.parametrize(("service", "what"), [
    ("Type=forking", "Type=forking is not supported: there is no systemd here"),
    ("Type=dbus", "Type='dbus' is not supported"),
    ("Type=sometimes", "Type='sometimes' is not supported"),
])
def test_service_types_the_agent_cannot_run_are_refused_at_submit(service: str,
                                                                   what: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("a.service", f"[Service]\n{service}\nExecStart=/usr/sbin/daemon\n")
    assert what in err.value.message
    assert err.value.hint


def test_forking_says_what_to_use_instead() -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("a.service", "[Service]\nType=forking\nExecStart=/usr/sbin/nginx\n")
    assert "Type=simple" in (err.value.hint or "") and "foreground" in (err.value.hint or "")
    for kind in ("simple", "exec", "notify", "oneshot", "idle"):
        parse_unit("a.service", f"[Service]\nType={kind}\nExecStart=/bin/true\n")


def test_timer_units_are_refused_pointing_at_what_to_use() -> None:
    with pytest.raises(ValidationError) as err:
        parse_unit("backup.timer", "[Timer]\nOnCalendar=daily\n")
    assert "unit type .timer is not supported" in err.value.message
    hint = err.value.hint or ""
    assert ".service" in hint and '"cron"' in hint and "app.json" in hint
