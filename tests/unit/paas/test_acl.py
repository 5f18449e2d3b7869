import contextlib
import io
import json
import random
from collections.abc import AsyncIterator

import asyncssh
import pytest

from shipmate import config
from shipmate.cli.main import parse
from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.paas import acl
from shipmate.paas.aclpolicy import GRANTED_ENV, check_parsed
from shipmate.paas.sshkeys import SshKeys
from shipmate.paas.sshserver import SshServer, Streams
from shipmate.paas.state import PaasState
from shipmate.store.base import Store
from shipmate.testing.store import memory_store
from shipmate.testing.streams import BufferWriter, EmptyReader


def _pub() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await memory_store()
    try:
        yield s
    finally:
        await s.close()


async def test_the_first_key_ever_added_is_admin_and_later_ones_only_with_admin(
        store: Store) -> None:
    keys = SshKeys(store)
    assert (await keys.add("first", _pub()))["admin"] is True
    assert (await keys.add("second", _pub()))["admin"] is False
    assert (await keys.add("third", _pub(), admin=True))["admin"] is True
    for name in ("first", "second", "third"):
        await keys.remove(name)
    # Every key removed: a key added now is not "the first" (no admin by accident).
    assert (await keys.add("later", _pub()))["admin"] is False
    assert [(k["name"], k["admin"]) for k in await keys.list()] == [("later", False)]


async def test_key_records_from_before_access_control_count_as_admin(store: Store) -> None:
    await store.put("/shipmate/ssh-keys/old", json.dumps({"name": "old", "fingerprint": "x"}))
    assert await acl.is_admin(store, "old")
    assert (await SshKeys(store).list())[0]["admin"] is True
    # ...and a store holding such keys has had its first key: a new one is not admin.
    assert (await SshKeys(store).add("new", _pub()))["admin"] is False


async def test_is_admin_reads_keys_and_dashboard_users_as_one_principal(store: Store) -> None:
    await store.put("/shipmate/ssh-keys/bob", json.dumps({"name": "bob", "admin": False}))
    await store.put("/shipmate/users/carol", json.dumps({"name": "carol", "admin": True}))
    await store.put("/shipmate/users/dave", json.dumps({"name": "dave"}))
    await store.put("/shipmate/ssh-keys/eve", json.dumps({"name": "eve", "admin": "yes"}))
    assert not await acl.is_admin(store, "bob")
    assert await acl.is_admin(store, "carol")
    assert not await acl.is_admin(store, "dave")  # a user without the field is not
    assert not await acl.is_admin(store, "eve")  # only true is true
    assert not await acl.is_admin(store, "nobody")
    assert not await acl.is_admin(store, "../x")
    await store.put("/shipmate/users/bob", json.dumps({"name": "bob", "admin": True}))
    assert await acl.is_admin(store, "bob")


async def test_grants_are_per_app_and_go_with_the_app(store: Store) -> None:
    state = PaasState(store)
    for app in ("one", "two"):
        await state.create_app(app)
    assert await acl.grant(store, "one", "bob") == ["bob"]
    assert await acl.grant(store, "one", "alice") == ["alice", "bob"]
    await acl.grant(store, "two", "bob")
    assert await acl.apps_for(store, "bob") == ["one", "two"]
    assert await acl.names_for(store, "one") == ["alice", "bob"]
    assert await acl.may_act(store, "alice", "one")
    assert not await acl.may_act(store, "alice", "two")
    with pytest.raises(ConflictError):
        await acl.grant(store, "one", "bob")
    assert await acl.revoke(store, "one", "bob") == ["alice"]
    with pytest.raises(NotFoundError):
        await acl.revoke(store, "one", "bob")
    await state.destroy_app("two")
    assert await acl.apps_for(store, "bob") == []
    await state.create_app("two")  # a new app of that name starts with no grants
    assert not await acl.may_act(store, "bob", "two")


async def test_grants_need_an_existing_app_and_valid_names(store: Store) -> None:
    with pytest.raises(NotFoundError, match="App ghost does not exist"):
        await acl.grant(store, "ghost", "bob")
    await PaasState(store).create_app("real")
    for bad in ("", "a/b", "-x", "x" * 65, "a b"):
        with pytest.raises(ValidationError):
            await acl.grant(store, "real", bad)
    with pytest.raises(ValidationError):
        await acl.grant(store, "Bad_App", "bob")
    assert await store.get("/shipmate/acl/ghost") is None


class Notes:
    """Collects what the SSH server records in the audit trail."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []

    async def __call__(self, key: str, verb: str, app: str, summary: str, *,
                       refused: str = "") -> None:
        self.seen.append((key, verb, app, refused))


async def _server(store: Store) -> tuple[SshServer, Notes]:
    notes = Notes()
    await store.put("/shipmate/ssh-keys/bob", json.dumps({"name": "bob", "admin": False}))
    state = PaasState(store)
    for app in ("mine", "other"):
        await state.create_app(app)
    await acl.grant(store, "mine", "bob")
    return SshServer(config.load({}), state, SshKeys(store), note=notes), notes


@pytest.mark.parametrize(("command", "verb", "app", "message"), [
    ("config:show other", "config:show", "other",
     "User bob does not have permissions to run config:show on other"),
    ("fleet submit web.service", "fleet submit", "",
     "User bob does not have permissions to run fleet submit"),
    ("acl:add mine bob", "acl:add", "", "User bob does not have permissions to run acl:add"),
    ("git-receive-pack '/other'", "git push", "other",
     "User bob does not have permissions to push to other"),
    ("git-upload-pack 'other.git'", "git fetch", "other",
     "User bob does not have permissions to fetch from other"),
    ("git-receive-pack '/brand-new'", "git push", "brand-new",
     "User bob does not have permissions to create apps"),
])
async def test_the_ssh_server_refuses_before_running_and_records_it(
        store: Store, command: str, verb: str, app: str, message: str) -> None:
    server, notes = await _server(store)
    out, err = BufferWriter(), BufferWriter()
    code = await server.dispatch(command, "bob", EmptyReader(), out, err)
    assert code == 1 and out.data == b""
    assert err.data.decode().splitlines()[0] == f" !     {message}"
    assert notes.seen == [("bob", verb, app, message)]
    assert not await PaasState(store).exists("brand-new")


class Recording(SshServer):
    """The real parsing and checks; the CLI lines that would run are recorded."""

    ran: list[tuple[list[str], dict[str, str]]]

    async def _run(self, argv: list[str], extra_env: dict[str, str], io: Streams) -> int:
        self.ran.append((argv, extra_env))
        return 0


SEEDS = ["config:show mine", "config:set mine K=V --no-restart", "logs -n 5 mine",
         "resource:limit --memory 64m mine", "events --app mine", "run mine ls other",
         "ps:scale mine web=2", "apps:list", "--format json apps:report mine",
         "letsencrypt:auto-renew mine", "releases:rollback mine v1", "import chef"]


def _mutate(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.3:
            words.insert(rng.randint(0, len(words)), rng.choice(
                ["other", "mine", "--app", "-n", "--memory", "--", "-", "--format", "json",
                 "--num=3", "--app=other", "x=y"]))
        elif choice < 0.6 and words:
            del words[rng.randrange(len(words))]
        elif words:
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def _parsed_app(argv: list[str]) -> tuple[str, str | None] | None:
    """(command, app) as the CLI's parser reads the line; None when it refuses the line."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            _, ns = parse(argv)
        except SystemExit:
            return None
    if not getattr(ns, "_command", None):
        return None
    app = getattr(ns, "app", None)
    return ns._command.name, app if isinstance(app, str) else None


async def test_fuzzed_lines_of_a_non_admin_run_only_on_granted_apps(store: Store) -> None:
    server, _ = await _server(store)
    recording = Recording(server.config, server.state, server.keys, note=Notes())
    recording.ran = []
    rng = random.Random(20)
    for _ in range(600):
        await recording.dispatch(_mutate(rng.choice(SEEDS), rng), "bob", EmptyReader(),
                                 BufferWriter(), BufferWriter())
    assert len(recording.ran) > 100
    for argv, env in recording.ran:
        assert env[GRANTED_ENV] == "mine"
        parsed = _parsed_app(argv[3:])  # after python -m shipmate.cli.main
        if parsed is not None:  # the line the server let through is the CLI's too
            check_parsed(*parsed, "bob", frozenset({"mine"}))
