"""app.json as Dokku reads it: comments, formation, scripts, ignored fields, engines."""

import io
import tarfile
from pathlib import Path

import pytest

from shipmate.errors import ValidationError
from shipmate.paas.build import notices, prepare
from shipmate.paas.builders import appjson
from shipmate.paas.builders.checks import Check, parse_app_json
from shipmate.paas.builders.detect import detect, runtime_image

DOKKU_APP_JSON = """{
  // Dokku accepts comments in app.json
  "name": "worker-only", /* and block comments */
  "formation": {"web": {"quantity": 0}, "worker": {"quantity": 1}},
  "scripts": {"dokku": {"predeploy": "echo 'http://not/a // comment'",
                        "postdeploy": "./notify.sh"}},
  "addons": ["heroku-postgresql"], "buildpacks": [{"url": "heroku/python"}],
  "healthchecks": {"worker": []}
}"""


def test_comments_are_stripped_outside_strings_only() -> None:
    data = appjson.loads(DOKKU_APP_JSON)
    assert data["scripts"]["dokku"]["predeploy"] == "echo 'http://not/a // comment'"
    text = '{"a": "x\\" // y", // gone\n"b": 1}'
    assert appjson.loads(text) == {"a": 'x" // y', "b": 1}
    with pytest.raises(ValidationError, match="line 3"):
        appjson.loads('{\n/* two\nlines */ "a": }')


def test_dokku_app_json_is_read_whole() -> None:
    parsed = appjson.parse(DOKKU_APP_JSON)
    assert parsed.formation == {"web": 0, "worker": 1}
    assert parsed.predeploy == "echo 'http://not/a // comment'"
    assert parsed.postdeploy == "./notify.sh"
    assert parsed.ignored == ("addons", "buildpacks")
    # The health-check reader takes the same commented text.
    assert parse_app_json(DOKKU_APP_JSON) == {"worker": ()}


def test_formation_shorthand_and_defaults() -> None:
    assert appjson.parse('{"formation": {"web": 0, "clock": 2}}').formation == {
        "web": 0, "clock": 2}
    # Dokku's default quantity: 1 for web, 0 for the others.
    assert appjson.parse('{"formation": {"web": {}, "worker": {}}}').formation == {
        "web": 1, "worker": 0}
    for bad in ('{"formation": {"web": -1}}', '{"formation": {"web": "2"}}',
                '{"formation": {"Web!": 1}}', '{"formation": [1]}', '{"formation": {"w": 99}}'):
        with pytest.raises(ValidationError, match="formation"):
            appjson.parse(bad)
    with pytest.raises(ValidationError, match="predeploy must be a command"):
        appjson.parse('{"scripts": {"dokku": {"predeploy": ["x"]}}}')


def test_initial_formation_web_one_others_zero_and_scale_wins() -> None:
    procs = {"web": "", "worker": "w"}
    assert appjson.initial_formation({}, {}, procs) == {"web": 1}
    assert appjson.initial_formation({"web": 0, "worker": 1}, {}, procs) == {
        "web": 0, "worker": 1}
    # What ps:scale set stays; a type app.json adds later gets its quantity.
    assert appjson.initial_formation({"web": 0, "worker": 1, "clock": 1},
                                     {"web": 3, "worker": 2}, procs) == {
        "web": 3, "worker": 2, "clock": 1}
    assert appjson.initial_formation({}, {}, {"worker": "w"}) == {}


def test_node_engine_mismatch() -> None:
    assert appjson.node_mismatch("20.x", 18)
    assert appjson.node_mismatch("^16.2", 18)
    assert not appjson.node_mismatch("18.x", 18)
    for ok in ("", ">=16", "*", "16 || 18", "<=20"):
        assert not appjson.node_mismatch(ok, 18)


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_build_notices_one_line_each(tmp_path: Path) -> None:
    tree = {"package.json": "{}", "app.json": '{"engines": {"node": "20.x"}, "addons": [],'
            ' "image": "x", "healthchecks": {"web": [{"path": "/h"}]}}'}
    prepared = prepare(_tar(tree), tmp_path, {})
    assert notices(prepared) == [
        "-----> app.json: ignoring addons, image (not used by Shipmate)",
        " !     app.json engines.node asks for 20.x; building with Node.js 18 "
        "(shipmate/node:18), the version installed"]
    assert prepared.checks.checks == {"web": (Check("/h"),)}
    plain = prepare(_tar({"package.json": "{}"}), tmp_path / "plain", {})
    assert notices(plain) == []


def test_procfile_only_app_runs_on_the_runtime_its_commands_name() -> None:
    assert runtime_image({"web": "python3 -m http.server $PORT"}) == "shipmate/python:3.11"
    assert runtime_image({"worker": "exec node worker.js"}) == "shipmate/node:18"
    assert runtime_image({"web": "FOO=1 /usr/bin/python3.11 app.py"}) == "shipmate/python:3.11"
    assert runtime_image({"web": "./server", "worker": "npm run work"}) == "shipmate/node:18"
    assert runtime_image({"web": "./server"}) == "shipmate/base:bookworm"
    plan = detect({"Procfile", "worker.py"}, {"worker": "python3 worker.py"})
    assert plan.builder == "procfile"
    assert (plan.dockerfile or "").startswith("FROM shipmate/python:3.11\n")
