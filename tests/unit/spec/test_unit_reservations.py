"""``[X-Fleet] ReserveMemory=`` / ``ReserveCPU=``: read, last one wins, bad values refused."""

from __future__ import annotations

import pytest

from shipmate.errors import ValidationError
from shipmate.scheduler.model import Machine, requirements_from_json
from shipmate.spec.units import parse_unit

BASE = "[Service]\nExecStart=/bin/true\n[X-Fleet]\n"


def test_reservations_are_read_and_survive_the_record() -> None:
    reqs = parse_unit("a.service", BASE + "ReserveMemory=1g\nReserveMemory=1.5G\n"
                      "ReserveCPU=50%\n").requirements
    assert (reqs.reserve_memory, reqs.reserve_cpus) == (1536 * 2**20, 0.5)
    assert requirements_from_json(reqs.to_json()) == reqs
    plain = parse_unit("b.service", BASE + "Conflicts=x*\n").requirements
    assert "reserve_memory" not in plain.to_json()  # records without them read as before
    machine = Machine("m1", "10.0.0.1", (("region", "eu"),), 4.0, 8 * 2**30)
    assert Machine.from_json(machine.to_json()) == machine
    assert Machine.from_json({"id": "old"}) == Machine("old")


@pytest.mark.parametrize(("line", "message"), [
    ("ReserveMemory=lots", "line 4: ReserveMemory 'lots' is not a size"),
    ("ReserveMemory=1k", "less than 6m"),
    ("ReserveCPU=none", "line 4: ReserveCPU 'none' is not a number of CPUs"),
    ("ReserveCPU=0", "out of range"),
    ("ReserveDisk=1g", "unrecognized requirement"),
])
def test_bad_reservations_are_refused_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_unit("a.service", BASE + line + "\n")
