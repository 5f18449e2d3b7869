"""Seeded random malformed input at every edge of a real daemon: SSH command lines (through
the SSH server's dispatch for volume, and a few dozen through the real ssh client), unit files
to the API's submit endpoint, manifests to the manifest parser, and API bodies. Nothing may end
in a 500, a traceback, an internal error or a server path. Bounded: about 6000 inputs, all on
loopback or in process; SHIPMATE_FUZZ_SEED replays a run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shipmate import config
from shipmate.errors import ValidationError
from shipmate.paas.sshkeys import SshKeys
from shipmate.paas.sshpolicy import COMMANDS, command_name
from shipmate.paas.sshserver import SshServer, Streams
from shipmate.paas.state import PaasState
from shipmate.spec.manifest import parse_manifest
from shipmate.testing.store import memory_store
from shipmate.testing.streams import BufferWriter, EmptyReader
from tests.integration.paas_helpers import PaasDaemon, run, running_daemon, unique

pytestmark = pytest.mark.integration
SEED = int(os.environ.get("SHIPMATE_FUZZ_SEED", "23"))
BAD = ["Traceback", "internal error", "Internal Server Error"]
ALPHABET = (string.printable + "\0\x7f\u00e9\u2028\ufeff\U0001f600\ud800\udcff" + "'\"\\/=.-@"
            + "[]{}:#;%$`|&<>")
SSH_SEEDS = [
    "apps:list", "apps:report app --app-locked", "config:set app K=V --no-restart",
    "config:set --encoded app K=dmFsdWU=", "config:get app K", "fleet submit x.service",
    "fleet start /tmp/x.service", "fleet start x.service --block-attempts 1", "fleet cat x",
    "import chef -o /tmp/x.yaml", "import puppet --name site", "apply /tmp/x.yaml --yes",
    "plan x.yaml", "ssh-keys:add k -", "ssh-keys:remove k", "cluster up", "cache gc",
    "--format json apps:list", "--format=json releases app", "git-receive-pack '/app'",
    "git-upload-pack 'app.git'", "domains:report app", "help", "--version", "'a b' \"c\"",
]
UNIT_SEEDS = [
    "[Unit]\nDescription=fuzz\n\n[Service]\nExecStart=/bin/sleep 1000\nRestart=always\n",
    "[Service]\nExecStartPre=-/bin/true\nExecStart=/bin/sh -c 'echo %n %p %i'\n"
    "Environment=A=1 \"B=2 3\"\n\n[X-Fleet]\nConflicts=fuzz*\nMachineMetadata=role=web\n",
    "[Unit]\nDescription=long \\\n  line\n[Container]\nImage=shipmate/base:bookworm\n"
    "Exec=sleep 1000\nPublishPort=8080:80\n",
]
MANIFEST_SEED = (Path(__file__).parents[2] / "examples" / "manifests" / "stack.yaml"
                 ).read_text()


def mutate(text: str, rng: random.Random, rounds: int = 3) -> str:
    """``text`` with a few random edits: inserts (NULs, lone surrogates, quotes, slashes),
    deletions, duplicated spans, cuts and a rare blow-up."""
    for _ in range(rng.randint(1, rounds)):
        i = rng.randint(0, len(text))
        j = min(len(text), i + rng.randint(0, 12))
        op = rng.randrange(7)
        if op == 0:
            text = text[:i] + "".join(rng.choices(ALPHABET, k=rng.randint(1, 6))) + text[i:]
        elif op == 1:
            text = text[:i] + text[j:]
        elif op == 2:
            text = text[:i] + text[i:j] * rng.randint(2, 50) + text[j:]
        elif op == 3:
            text = text[:i]
        elif op == 4:
            text = text[:i] + rng.choice(["..", "../../etc/passwd", "/", "\n", "\\", "\udcff",
                                          "\0", "=", "--debug", "-o", "%", "{{", "[[[["]) + text[i:]
        elif op == 5:
            text = text[:i] + "[" * rng.randint(50, 3000) + text[i:]
        else:
            text = "".join(rng.choice([c, c.upper(), c * 2]) for c in text)
    return text


def _clean(text: str, where: str, *paths: str) -> None:
    for word in BAD:
        assert word not in text, f"{word!r} in {where}: {text[:600]!r}"
    for path in paths:
        assert path not in text, f"server path in {where}: {text[:600]!r}"


@pytest.fixture(scope="module")
def daemon() -> Iterator[PaasDaemon]:
    with running_daemon("shipmate-fuzz-", cache=False) as d:
        yield d


# SSH command lines ---------------------------------------------------------------------------

class _Recording(SshServer):
    """The real parsing, allowlist and git routing; what would be started is recorded."""

    ran: list[list[str]]

    async def _run(self, argv: list[str], extra_env: dict[str, str], io: Streams) -> int:
        self.ran.append(argv)
        return 0


async def _dispatch_many(commands: list[str], state_dir: Path) -> list[list[str]]:
    store = await memory_store()
    cfg = config.load({"SHIPMATE_STATE_DIR": str(state_dir)})
    server = _Recording(cfg, PaasState(store), SshKeys(store))
    # An admin key: what a non-admin may run is fuzzed in tests/unit/paas/test_acl.py.
    await store.put("/shipmate/ssh-keys/fuzz", '{"name": "fuzz", "admin": true}')
    server.ran = []
    try:
        for command in commands:
            out, err = BufferWriter(), BufferWriter()
            code = await server.dispatch(command, "fuzz", EmptyReader(), out, err)
            text = err.data.decode(errors="replace")
            _clean(text, f"ssh {command!r}", str(state_dir))
            if code:
                assert all(ln.startswith(" !     ") for ln in text.splitlines()), text
    finally:
        await store.close()
    return server.ran


def test_fuzzed_ssh_command_lines_through_dispatch(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    commands = [mutate(rng.choice(SSH_SEEDS), rng) for _ in range(2500)]
    ran = asyncio.run(_dispatch_many(commands, tmp_path / "state"))
    assert ran, "no fuzzed command got through: the fuzz is not reaching the CLI path"
    for argv in ran:
        if argv[0].startswith("git-"):
            assert Path(argv[1]).parent == tmp_path / "state" / "repos"
            continue
        name, _ = command_name(argv[3:])  # after python -m shipmate.cli.main
        assert not name or COMMANDS[name].allowed, argv
        if name.startswith("fleet ") or name in ("ssh-keys:add",):
            assert not any("/" in a for a in argv[5:]), argv


def test_fuzzed_ssh_command_lines_through_real_ssh(daemon: PaasDaemon) -> None:
    rng = random.Random(SEED + 1)
    sent = 0
    while sent < 40:
        command = mutate(rng.choice(SSH_SEEDS), rng, rounds=2)
        if "\0" in command or "git-" in command or len(command) > 2000:
            continue  # ssh cannot send a NUL; pushes are tested in test_paas_security
        name = ""
        with contextlib.suppress(ValidationError):
            name = command_name(command.split())[0]
        if name.startswith("fleet") or name in ("ssh-keys:remove", "config:set"):
            continue  # would wait for agents or change this daemon's keys and config
        argv = [*daemon.ssh_command().split(), "-p", str(daemon.ssh_port),
                "shipmate@127.0.0.1", command]
        # A lone surrogate goes out as its raw (non-UTF-8) bytes, as a hostile client sends.
        res = run([a.encode(errors="surrogatepass").decode(errors="surrogateescape")
                   for a in argv],
                  timeout=60, input="")
        _clean(res.stdout + res.stderr, f"real ssh {command!r}", str(daemon.state_dir))
        sent += 1


# unit files to the submit endpoint ---------------------------------------------------------

async def _post_all(socket: Path, requests: list[tuple[str, str, bytes]]
                    ) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    conn = aiohttp.UnixConnector(path=str(socket))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        for method, path, body in requests:
            async with session.request(method, f"http://d{path}", data=body,
                                       headers={"Content-Type": "application/json"}) as resp:
                out.append((resp.status, await resp.text(errors="replace")))
    return out


def _json_bytes(data: Any, rng: random.Random) -> bytes:
    text = json.dumps(data)  # lone surrogates come out as \\udcff escapes
    if rng.random() < 0.3:
        text = mutate(text, rng, rounds=2)
    return text.encode(errors="surrogatepass")


def test_fuzzed_unit_files_to_the_api(daemon: PaasDaemon) -> None:
    rng = random.Random(SEED + 2)
    prefix = unique("fz")
    names = [f"{prefix}-{i}.service" for i in range(4)] + [f"{prefix}@.service",
                                                           f"{prefix}-c.container"]
    requests = []
    for _ in range(1500):
        seed = rng.choice(UNIT_SEEDS)
        text = mutate(seed, rng) if rng.random() < 0.8 else seed
        typed = [n for n in names if n.endswith(".container") == ("[Container]" in seed)]
        name = rng.choice(typed) if rng.random() < 0.9 else mutate(rng.choice(names), rng, 1)
        if rng.random() < 0.05:
            text = text.encode(errors="surrogateescape").decode("latin-1")
        requests.append(("POST", "/v1/fleet/submit",
                         _json_bytes({"units": [{"name": name, "text": text}]}, rng)))
    socket = daemon.state_dir / "shipmate.sock"
    try:
        answers = asyncio.run(_post_all(socket, requests))
        for (_, _, body), (status, text) in zip(requests, answers, strict=True):
            assert status < 500, (status, text, body[:300])
            _clean(text, f"submit {body[:200]!r}", str(daemon.state_dir))
        statuses = [s for s, _ in answers]
        assert statuses.count(200) > 50 and statuses.count(400) > 50, statuses
    finally:
        run(["curl", "-s", "--unix-socket", str(socket), "-X", "POST", "--data-binary",
             json.dumps({"units": names}), "http://d/v1/fleet/destroy"])


# manifests ------------------------------------------------------------------------------------

def test_fuzzed_manifests_to_the_parser() -> None:
    rng = random.Random(SEED + 3)
    refused = 0
    for _ in range(1500):
        text = mutate(MANIFEST_SEED, rng)
        try:
            parse_manifest(text, "fuzz.yaml", read_file=lambda path: "A=1\n")
        except ValidationError as exc:
            refused += 1
            assert exc.message.startswith("fuzz.yaml"), exc.message
            _clean(str(exc), f"manifest {text[:200]!r}")
    assert 0 < refused < 1500


# API bodies -----------------------------------------------------------------------------------

def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2**70, 1e308, float("nan"), 3.5])
    if kind == 2:
        return "".join(rng.choices(ALPHABET, k=rng.randint(0, 20)))
    if kind == 3:
        return "x" * rng.choice([0, 1, 300, 70000])
    if kind == 4:
        return rng.choice(["web", "app", "_all_", "wait", "K", "example.com", "\udcff", "v1"])
    if kind == 5:
        nested: Any = []
        for _ in range(rng.choice([1, 50, 200])):
            nested = [nested]
        return nested
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _key(rng: random.Random) -> str:
    return rng.choice(["name", "set", "unset", "restart", "add", "remove", "formation",
                       "units", "state", "key", "version", "num", "follow", "process",
                       "web", "K", "\udcff", ""])


def _endpoints(app: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/v1/apps", {"name": "x"}),
        ("PATCH", f"/v1/apps/{app}/config", {"set": {"K": "v"}, "restart": False}),
        ("POST", f"/v1/apps/{app}/scale", {"formation": {"web": 0}}),
        ("POST", f"/v1/apps/{app}/rollback", {"version": 1}),
        ("POST", f"/v1/apps/{app}/logs", {"num": 5, "follow": False, "process": ""}),
        ("POST", "/v1/ssh-keys", {"name": "k", "key": "ssh-ed25519 AAAA"}),
        ("POST", "/v1/fleet/desired", {"units": ["nope.service"], "state": "loaded"}),
        ("POST", "/v1/fleet/destroy", {"units": ["nope.service"]}),
    ]


def _bodies(endpoints: list[tuple[str, str, dict[str, Any]]], rng: random.Random, count: int
            ) -> list[tuple[str, str, bytes]]:
    out = []
    for _ in range(count):
        method, path, body = rng.choice(endpoints)
        data: Any = dict(body)
        for _ in range(rng.randint(1, 3)):
            data[rng.choice([*body, _key(rng)])] = _random_value(rng)
        if rng.random() < 0.1:
            data = _random_value(rng)
        raw = _json_bytes(data, rng)
        if rng.random() < 0.05:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        out.append((method, path, raw))
    return out


def _fuzz_api(daemon: PaasDaemon, endpoints: Callable[[str], list[tuple[str, str, Any]]],
              seed: int, count: int) -> None:
    rng = random.Random(seed)
    app = unique("fuzzapi")
    daemon.apps.add(app)
    daemon.ok("apps:create", app)
    before = {a["name"] for a in json.loads(daemon.ok("apps:list", "--format", "json"))}
    requests = _bodies(endpoints(app), rng, count)
    try:
        answers = asyncio.run(_post_all(daemon.state_dir / "shipmate.sock", requests))
        failed = [(status, method, path, body[:300], text[:300])
                  for (method, path, body), (status, text) in zip(requests, answers, strict=True)
                  if status >= 500 or any(word in text for word in BAD)]
        assert not failed, f"{len(failed)} failed, e.g.: " + "\n".join(map(str, failed[:8]))
        for (method, path, body), (_, text) in zip(requests, answers, strict=True):
            _clean(text, f"{method} {path} {body[:200]!r}", str(daemon.state_dir))
        assert {s for s, _ in answers} >= {200, 400}
    finally:
        after = {a["name"] for a in json.loads(daemon.ok("apps:list", "--format", "json"))}
        daemon.apps.update(after - before)


def test_fuzzed_api_bodies(daemon: PaasDaemon) -> None:
    _fuzz_api(daemon, _endpoints, SEED + 4, 900)


def test_fuzzed_domain_bodies(daemon: PaasDaemon) -> None:
    _fuzz_api(daemon, lambda app: [
        ("POST", f"/v1/apps/{app}/domains", {"add": [f"{app}.fuzz.test"]}),
        ("POST", f"/v1/apps/{app}/domains", {"remove": [f"{app}.fuzz.test"]})], SEED + 5, 200)
