"""``shipmate fleet`` rendering (pure): fleetctl's columns, truncation, fields, legend."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.agent.api import unit_file_rows
from shipmate.cli.fleet import (
    MACHINE_FIELDS,
    UNIT_FIELDS,
    UNIT_FILE_FIELDS,
    align,
    local_units,
    machine_legend,
    mangle,
    reached,
    render_rows,
    render_status,
)
from shipmate.errors import ValidationError
from shipmate.scheduler.model import Machine, Placement, UnitRecord, UnitState
from shipmate.scheduler.registry import Snapshot
from shipmate.spec.unitreqs import Requirements

MID = "c9de9451f2b0e1d2a3b4c5d6e7f80910"


def test_machine_legend_like_fleetctl() -> None:
    assert machine_legend(MID, "10.0.0.1", False) == "c9de9451.../10.0.0.1"
    assert machine_legend(MID, "10.0.0.1", True) == f"{MID}/10.0.0.1"
    assert machine_legend(MID, "", False) == "c9de9451..."


def test_list_machines_columns() -> None:
    rows = [{"id": MID, "public_ip": "10.0.0.1", "metadata": {"region": "eu", "disk": "ssd"}},
            {"id": "m2", "public_ip": "", "metadata": {}}]
    lines = render_rows(rows, MACHINE_FIELDS, "machine,ip,metadata", full=False, legend=True)
    assert lines == ["MACHINE\tIP\tMETADATA", "c9de9451...\t10.0.0.1\tdisk=ssd,region=eu",
                     "m2...\t-\t-"]


def test_list_units_fields_full_and_no_legend() -> None:
    rows = [{"unit": "hello.service", "machine": MID, "public_ip": "10.0.0.1",
             "active": "active", "sub": "running", "hash": "a" * 40, "load": "loaded"}]
    assert render_rows(rows, UNIT_FIELDS, "unit,machine,active,sub", full=False,
                       legend=False) == ["hello.service\tc9de9451.../10.0.0.1\tactive\trunning"]
    assert render_rows(rows, UNIT_FIELDS, "unit,hash", full=True, legend=False) == [
        "hello.service\t" + "a" * 40]
    assert render_rows(rows, UNIT_FIELDS, "hash", full=False, legend=True) == [
        "HASH", "aaaaaaa"]


@pytest.mark.parametrize(("spec", "message"), [
    ("", "Must define output format"), ("unit,bogus", "Invalid key in output format: 'bogus'")])
def test_bad_fields_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        render_rows([], UNIT_FIELDS, spec, full=False, legend=True)


def test_unit_files_rows_from_a_snapshot() -> None:
    snap = Snapshot(
        revision=10,
        units={"a.service": UnitRecord("a.service", "[Unit]\nDescription=A\n[Service]\n"
                                       "ExecStart=/bin/true\n", "f" * 40),
               "b.service": UnitRecord("b.service", "x", "e" * 40),
               "g.service": UnitRecord("g.service", "x", "d" * 40,
                                       Requirements(global_=True))},
        desired={"a.service": "launched", "b.service": "launched", "g.service": "launched"},
        placements={"a.service": Placement("a.service", (MID,))},
        machines={MID: Machine(MID, "10.0.0.1")},
        states=[UnitState("a.service", MID, "loaded", "active", "running", "f" * 40)],
        leader=None, mods={})
    rows = unit_file_rows(snap)
    lines = render_rows(rows, UNIT_FILE_FIELDS, "unit,hash,dstate,state,target,desc",
                        full=False, legend=True)
    assert lines == [
        "UNIT\tHASH\tDSTATE\tSTATE\tTARGET\tDESC",
        "a.service\tfffffff\tlaunched\tlaunched\tc9de9451.../10.0.0.1\tA",
        "b.service\teeeeeee\tlaunched\tinactive\t-\t-",
        "g.service\tddddddd\tlaunched\t-\tglobal\t-",
    ]
    assert reached(rows[0], "launched") and not reached(rows[1], "launched")
    assert reached(rows[2], "launched")  # global: its desired state
    assert reached(None, "inactive")


def test_align_pads_like_tabwriter() -> None:
    assert align(["A\tBB\tC", "AAAA\tB\tC"]) == ["A   \tBB\tC", "AAAA\tB \tC"]


def test_mangle_and_local_files(tmp_path: Path) -> None:
    assert mangle("hello") == "hello.service"
    assert mangle("dir/web.container") == "web.container"
    (tmp_path / "a.service").write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "t@.service").write_text("[Service]\nExecStart=/bin/echo %i\n")
    names, files = local_units([str(tmp_path / "a.service"), str(tmp_path / "t@2.service"),
                                "remote.service"])
    assert names == ["a.service", "t@2.service", "remote.service"]
    assert [f["name"] for f in files] == ["a.service", "t@.service", "t@2.service"]
    assert "text" not in files[2]  # the instance takes its template's content


def test_status_text() -> None:
    data = {"unit": "a.service", "dstate": "launched", "hash": "f" * 40, "placed": [MID],
            "machines": [{"machine": MID, "detail": {"active": "active", "sub": "running",
                                                      "main_pid": 42},
                          "lines": ["hello"]}]}
    text = render_status(data)
    assert text[0] == f"\u25cf a.service - on {MID}"
    assert "   Active: active (running)" in text and " Main PID: 42" in text
    assert text[-1] == "hello"


def test_a_waiting_unit_shows_its_reason_in_list_units_and_status() -> None:
    rows = [{"unit": "big.service", "machine": "", "active": "inactive", "sub": "waiting",
             "hash": "a" * 40, "reason": "needs 2 GiB memory; the largest free is 1 GiB on m2"}]
    assert render_rows(rows, UNIT_FIELDS, "unit,machine,active,sub,reason", full=False,
                       legend=True) == [
        "UNIT\tMACHINE\tACTIVE\tSUB\tREASON",
        "big.service\t-\tinactive\twaiting\tneeds 2 GiB memory; the largest free is 1 GiB on m2"]
    text = render_status({"unit": "big.service", "dstate": "launched", "hash": "a" * 40,
                          "placed": [], "machines": [],
                          "waiting": "needs 2 GiB memory; the largest free is 1 GiB on m2"})
    assert text == ["\u25cf big.service", "   Loaded: not-found (target: launched)",
                    "   Active: not scheduled on any machine",
                    "  Waiting: needs 2 GiB memory; the largest free is 1 GiB on m2"]
