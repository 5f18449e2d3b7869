import pytest

from shipmate.errors import ValidationError
from shipmate.paas.build import labelled
from shipmate.paas.builders.checks import (
    Check,
    CheckPlan,
    parse_app_json,
    parse_checks_file,
    plan_checks,
)
from shipmate.paas.builders.detect import detect, processes


def test_detection_order() -> None:
    assert detect({"Dockerfile", "package.json"}, {}).builder == "dockerfile"
    assert detect({"package.json", "requirements.txt"}, {}).builder == "nodejs"
    assert detect({"requirements.txt", "index.html"}, {}).builder == "python"
    assert detect({"pyproject.toml"}, {}).builder == "python"
    assert detect({"index.html"}, {}).builder == "static"
    assert detect({"Procfile", "run.sh"}, {"web": "./run.sh"}).builder == "procfile"
    with pytest.raises(ValidationError, match="Unable to select a builder"):
        detect({"README"}, {})


def test_node_dockerfile_installs_dependencies_before_copying_code() -> None:
    text = detect({"package.json"}, {}).dockerfile or ""
    assert text.startswith("FROM shipmate/node:18")
    deps = text.index("COPY package*.json")
    install = text.index("npm ci")
    code = text.index("COPY . .")
    assert deps < install < code
    assert "ARG NPM_CONFIG_REGISTRY" in text and "ENV NPM_CONFIG_REGISTRY" not in text


def test_python_dockerfile_layers() -> None:
    text = detect({"requirements.txt", "app.py"}, {}).dockerfile or ""
    assert text.index("COPY requirements.txt") < text.index("pip install") < text.index("COPY . .")
    assert "ARG PIP_INDEX_URL" in text


def test_processes_from_procfile_and_defaults() -> None:
    node = detect({"package.json"}, {})
    assert processes(node, {}) == {"web": ""}
    assert processes(node, {"web": "node a.js", "worker": "node w.js", "release": "x"}) == {
        "web": "node a.js", "worker": "node w.js"}
    py = detect({"requirements.txt", "app.py"}, {})
    assert processes(py, {}) == {"web": "python3 app.py"}


def test_app_json_healthchecks() -> None:
    text = ('{"healthchecks": {"web": [{"type": "startup", "path": "/health", "content": "ok",'
            ' "attempts": 2, "timeout": 1}, {"type": "liveness", "path": "/x"}]}}')
    assert parse_app_json(text) == {"web": (Check("/health", "ok", 2, 1.0),)}
    with pytest.raises(ValidationError):
        parse_app_json("{not json")
    with pytest.raises(ValidationError, match="attempts must be a number"):
        parse_app_json('{"healthchecks": {"web": [{"attempts": "x"}]}}')


def test_checks_file() -> None:
    checks, wait = parse_checks_file("WAIT=2\nATTEMPTS=4\n/ Hello\n/health ok\n")
    assert wait == 2.0
    assert checks == (Check("/", "Hello", 4), Check("/health", "ok", 4))
    with pytest.raises(ValidationError, match="CHECKS line 1"):
        parse_checks_file("bogus line")


def test_plan_checks_prefers_app_json_and_round_trips() -> None:
    plan = plan_checks({"app.json": '{"healthchecks": {"web": [{"path": "/a"}]}}',
                        "CHECKS": "/b"})
    assert plan.checks["web"][0].path == "/a"
    assert CheckPlan.from_json(plan.to_json()) == plan
    assert plan_checks({}).checks == {}


def test_declared_checks_are_bounded_too() -> None:
    with pytest.raises(ValidationError, match=r"attempts 1000 is out of range"):
        parse_app_json('{"healthchecks": {"web": [{"attempts": 1000}]}}')
    with pytest.raises(ValidationError, match=r"timeout 0\.1 is out of range"):
        parse_app_json('{"healthchecks": {"web": [{"timeout": 0.1}]}}')
    with pytest.raises(ValidationError, match=r"CHECKS line 1: wait 100000 is out of range"):
        parse_checks_file("WAIT=100000\n/ ok\n")


def test_stay_up_wait_only_without_explicit_checks_unless_set() -> None:
    plain, waits = CheckPlan({}), CheckPlan({}, 7.0)
    assert plain.stay_up({}, 3.0, explicit=False) == 3.0  # the checks_wait setting
    assert waits.stay_up({}, 3.0, explicit=False) == 7.0  # CHECKS WAIT=
    assert plain.stay_up({}, 3.0, explicit=True) == 0.0  # explicit checks: none
    assert plain.stay_up({"wait": 0}, 3.0, explicit=False) == 0.0  # checks:set wait 0
    assert waits.stay_up({"wait": 2}, 3.0, explicit=True) == 2.0
    _, none_given = parse_checks_file("/ ok\n")
    assert none_given is None and "wait" not in CheckPlan({}).to_json()
    assert CheckPlan.from_json({"wait": 3.0, "checks": {}}).wait == 3.0  # an older record


@pytest.mark.parametrize("files", [{"package.json"}, {"requirements.txt"}, {"index.html"},
                                   {"Procfile"}])
def test_a_code_only_push_misses_the_cache_at_the_last_step_only(files: set[str]) -> None:
    """Everything that does not depend on the code comes before `COPY . .`, which ends the
    file: with the classic builder each step after a cache miss costs a container."""
    text = detect(files, {"web": "x"}).dockerfile or ""
    steps = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert steps[-1] == "COPY . ."
    assert text.count("COPY . .") == 1


def test_generated_dockerfiles_carry_the_labels_before_the_code() -> None:
    text = labelled(detect({"package.json"}, {}).dockerfile or "", {"shipmate.app": "web-1"})
    lines = text.splitlines()
    assert lines[:2] == ["FROM shipmate/node:18", 'LABEL shipmate.app="web-1"']
    assert lines[-1] == "COPY . ."
    assert labelled("FROM x\nCOPY . .\n", {}) == "FROM x\nCOPY . .\n"
