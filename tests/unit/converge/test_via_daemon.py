"""apply --via-daemon against an in-memory fleet API: what is submitted, started, replaced,
pruned, and how waiting ends."""

from __future__ import annotations

from typing import Any

from shipmate.converge.via_daemon import apply_via_daemon, plan_via_daemon
from shipmate.spec.units import parse_unit
from tests.unit.converge.helpers import STACK, AutoClock, manifest


class FakeFleet:
    """The /v1/fleet routes over dicts; launched units become active on their MachineID
    after ``delay`` polls of list-units (``failing``: they fail instead)."""

    def __init__(self, delay: int = 1) -> None:
        self.units: dict[str, tuple[str, str]] = {}  # name -> (text, hash)
        self.desired: dict[str, str] = {}
        self.ages: dict[str, int] = {}
        self.writes: list[tuple[str, tuple[str, ...]]] = []
        self.delay = delay
        self.failing: set[str] = set()
        self.never: set[str] = set()

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        body = json_body or {}
        if path == "/v1/fleet/unit-files":
            return [{"unit": n, "hash": h, "dstate": self.desired.get(n, "inactive")}
                    for n, (_, h) in sorted(self.units.items())]
        if path == "/v1/fleet/cat":
            return {"text": self.units[(params or {})["unit"]][0]}
        if path == "/v1/fleet/units":
            return self._states()
        if path == "/v1/fleet/status":
            name = (params or {})["unit"]
            return {"unit": name, "machines": [{"machine": "m1", "detail": {
                "active": "failed", "result": "the new container failed its health check"}}]}
        names = tuple(u["name"] if isinstance(u, dict) else u for u in body["units"])
        verb = "replace" if body.get("replace") else path.rsplit("/", 1)[1]
        self.writes.append((verb, names))
        if path == "/v1/fleet/submit":
            for u in body["units"]:
                # the registry refuses resubmission, unless asked to replace in place
                assert body.get("replace") or u["name"] not in self.units
                self.units[u["name"]] = (u["text"], parse_unit(u["name"], u["text"]).hash)
                self.ages.pop(u["name"], None)
        elif path == "/v1/fleet/desired":
            for n in names:
                self.desired[n] = body["state"]
        elif path == "/v1/fleet/destroy":
            for n in names:
                self.units.pop(n)
                self.desired.pop(n, None)
                self.ages.pop(n, None)
        return []

    def _states(self) -> list[dict[str, Any]]:
        rows = []
        for name, (text, h) in self.units.items():
            if self.desired.get(name) != "launched" or name in self.never:
                continue
            self.ages[name] = self.ages.get(name, 0) + 1
            machine = parse_unit(name, text).requirements.machine_id
            active = ("failed" if name in self.failing else "active") \
                if self.ages[name] > self.delay else "activating"
            rows.append({"unit": name, "machine": machine, "active": active, "sub": "x",
                         "hash": h})
        return rows


def unit(c: str) -> str:
    return f"manifest-stack-{c}.container"


async def run(fleet: FakeFleet, text: str = STACK, **kw: Any) -> Any:
    lines: list[str] = []
    result = await apply_via_daemon(fleet, manifest(text), "m1", clock=AutoClock(),
                                    report=lines.append, **kw)
    result.lines = lines
    return result


async def test_first_apply_submits_and_starts_in_dependency_order() -> None:
    fleet = FakeFleet()
    result = await run(fleet)
    assert result.ok and result.changed
    assert fleet.writes == [("submit", (unit("db"), unit("api"), unit("worker"))),
                            ("desired", (unit("db"),)), ("desired", (unit("api"),)),
                            ("desired", (unit("worker"),))]
    assert result.lines.index(f"{unit('db')}: active/x on m1") \
        < result.lines.index(f"start {unit('api')}")


async def test_second_apply_writes_nothing() -> None:
    fleet = FakeFleet()
    await run(fleet)
    before = list(fleet.writes)
    plan = await plan_via_daemon(fleet, manifest(STACK), "m1")
    assert not plan.changes_anything and plan.lines() == []
    result = await run(fleet)
    assert result.ok and not result.changed and fleet.writes == before


async def test_changed_container_is_replaced_in_place_alone() -> None:
    fleet = FakeFleet()
    await run(fleet)
    mark = len(fleet.writes)
    result = await run(fleet, STACK.replace("QUEUE: jobs", "QUEUE: other"))
    assert result.ok
    # never destroyed: the agent replaces the container start-first, health-gated
    assert fleet.writes[mark:] == [("replace", (unit("worker"),)),
                                   ("desired", (unit("worker"),))]
    assert "QUEUE=other" in fleet.units[unit("worker")][0]


async def test_stopped_unit_is_started_again() -> None:
    fleet = FakeFleet()
    await run(fleet)
    fleet.desired[unit("api")] = "inactive"
    mark = len(fleet.writes)
    assert (await run(fleet)).ok
    assert fleet.writes[mark:] == [("desired", (unit("api"),))]


async def test_prune_removes_only_this_manifests_units() -> None:
    fleet = FakeFleet()
    await run(fleet)
    other = STACK.replace("name: stack", "name: stack-worker")  # shares the name prefix
    await apply_via_daemon(fleet, manifest(other), "m1", clock=AutoClock())
    smaller = STACK.replace("        depends_on: [db]\n      worker:", "      worker:") \
        .replace("      api:\n        image: example/api:1\n        command: [sleep, infinity]\n"
                 "        env: {MODE: prod, DEBUG: \"0\"}\n        ports: [\"8080:80\"]\n", "")
    kept = await run(fleet, smaller)
    assert kept.ok and kept.plan.orphans == (unit("api"),) and unit("api") in fleet.units
    mark = len(fleet.writes)
    pruned = await run(fleet, smaller, prune=True)
    assert pruned.ok and fleet.writes[mark:] == [("destroy", (unit("api"),))]
    assert "manifest-stack-worker-api.container" in fleet.units


async def test_failed_unit_and_timeout_are_reported() -> None:
    fleet = FakeFleet()
    fleet.failing.add(unit("db"))
    result = await run(fleet)
    assert not result.ok and unit("db") in result.failures[0] and "failed on m1" in \
        result.failures[0]
    assert "failed its health check" in result.failures[0]  # the machine's reason
    assert ("desired", (unit("api"),)) not in fleet.writes  # dependents were not started
    slow = FakeFleet()
    slow.never.add(unit("worker"))
    result = await run(slow, timeout=5)
    assert [f.split()[0] for f in result.failures] == [unit("worker")]
    assert "not active within" in result.failures[0]
