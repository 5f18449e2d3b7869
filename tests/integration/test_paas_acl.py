"""Issue 20's access control over real SSH and real git: a non-admin key pushes the app granted
to it, is refused on another app (a command and a push), on creating an app by pushing and on
``fleet submit``, sees only its app in ``apps:list``; each refusal is in ``shipmate events``
under the key's name. The first key (the daemon's ``tester``) is an admin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.paas_helpers import PaasDaemon, make_key, paas, unique, work_tree

pytestmark = pytest.mark.integration
__all__ = ["paas"]  # the fixture, imported for pytest
UNIT = "[Unit]\nDescription=acl probe\n\n[Service]\nExecStart=/bin/sleep 1000\n"


def _refused(res: object, message: str) -> None:
    stderr = str(getattr(res, "stderr", ""))
    assert getattr(res, "returncode", 0) != 0, stderr
    assert f" !     {message}" in stderr, stderr
    assert "Traceback" not in stderr


def test_a_non_admin_key_acts_only_on_its_apps(paas: PaasDaemon, tmp_path: Path) -> None:
    mine, other, new = unique("aclmine"), unique("aclother"), unique("aclnew")
    paas.apps.update({mine, other, new})
    paas.ok("apps:create", mine)
    paas.ok("apps:create", other)
    dev = make_key(tmp_path, "dev")
    paas.ok("ssh-keys:add", "dev", f"{dev}.pub")
    keys = {k["name"]: k["admin"] for k in json.loads(paas.ok("ssh-keys:list", "--format",
                                                              "json"))}
    assert keys["tester"] is True and keys["dev"] is False
    assert 'NAME="dev" SSHCOMMAND_ALLOWED_KEYS="none" ADMIN="false"' in paas.ok("ssh-keys:list")
    # An admin key grants over SSH too; the non-admin cannot grant itself.
    res = paas.ssh("acl:add", mine, "dev")
    assert res.returncode == 0, res.stderr
    assert json.loads(paas.ok("acl:list", mine, "--format", "json")) == ["dev"]
    _refused(paas.ssh("acl:add", other, "dev", key=dev),
             "User dev does not have permissions to run acl:add")

    # Its own app: push, commands, apps:list shows it alone.
    tree = work_tree(tmp_path / "tree")
    push = paas.push(tree, mine, key=dev)
    assert push.returncode == 0, push.stderr
    paas.wait_page(mine, "Hello from Shipmate")
    res = paas.ssh("config:set", mine, "GREETING=hi", "--no-restart", key=dev)
    assert res.returncode == 0, res.stderr
    listed = paas.ssh("apps:list", "--format", "json", key=dev)
    assert [a["name"] for a in json.loads(listed.stdout)] == [mine]
    assert other in paas.ssh("apps:list").stdout  # the admin sees every app

    # Another app: refused before anything runs, by command and by push.
    _refused(paas.ssh("config:show", other, key=dev),
             f"User dev does not have permissions to run config:show on {other}")
    _refused(paas.ssh("apps:destroy", other, "--force", key=dev),
             f"User dev does not have permissions to run apps:destroy on {other}")
    _refused(paas.push(tree, other, key=dev),
             f"User dev does not have permissions to push to {other}")
    assert json.loads(paas.ok("releases", other, "--format", "json")) == []
    _refused(paas.push(tree, new, key=dev), "User dev does not have permissions to create apps")
    assert paas.cli("apps:exists", new).returncode == 1
    # The cluster and global settings.
    _refused(paas.ssh("fleet", "submit", "acl-probe.service", key=dev),
             "User dev does not have permissions to run fleet submit")
    _refused(paas.ssh("domains:set-global", "evil.test", key=dev),
             "User dev does not have permissions to run domains:set-global")
    assert "acl-probe.service" not in paas.ok("fleet", "list-unit-files")

    # Every refusal is in the audit trail under the key's name.
    events = [json.loads(line) for line in paas.ok("events", "-n", "50", "--format",
                                                   "json").splitlines()]
    refused = {(e["verb"], e["app"]) for e in events
               if e["actor"] == "dev" and e["via"] == "ssh" and e["outcome"] == "refused"}
    assert refused >= {("acl:add", ""), ("config:show", other), ("apps:destroy", other),
                       ("git push", other), ("git push", new), ("fleet submit", ""),
                       ("domains:set-global", "")}
    text = paas.ok("events", "--app", other)
    assert "dev" in text and "refused: User dev does not have permissions" in text

    # Revoked: the app is out of reach at once.
    paas.ok("acl:remove", mine, "dev")
    _refused(paas.ssh("config:show", mine, key=dev),
             f"User dev does not have permissions to run config:show on {mine}")
    paas.ok("ssh-keys:remove", "dev")


def test_grants_follow_a_renamed_app_and_go_with_a_destroyed_one(paas: PaasDaemon) -> None:
    old, new = unique("aclold"), unique("aclnew")
    paas.apps.update({old, new})
    paas.ok("apps:create", old)
    paas.ok("acl:add", old, "someone")
    paas.ok("apps:rename", old, new, "--skip-deploy")
    assert json.loads(paas.ok("acl:list", new, "--format", "json")) == ["someone"]
    paas.ok("apps:destroy", new, "--force")
    paas.ok("apps:create", new)
    assert json.loads(paas.ok("acl:list", new, "--format", "json")) == []
    res = paas.cli("acl:add", "no-such-app-x", "someone")
    assert res.returncode == 1 and res.stderr.startswith(" !     App no-such-app-x does not exist")
