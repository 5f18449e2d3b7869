"""Manifest parsing: specs built right, and every refusal names file:line."""

from __future__ import annotations

import textwrap

import pytest

from shipmate.errors import ValidationError
from shipmate.spec.container import HealthCheck, Mount, PortMapping, spec_hash
from shipmate.spec.manifest import Manifest, parse_manifest

PATH = "/srv/app/stack.yaml"


def parse(text: str, files: dict[str, str] | None = None) -> Manifest:
    def read(path: str) -> str:
        if files is None or path not in files:
            raise ValidationError(f"cannot read {path}")
        return files[path]

    return parse_manifest(textwrap.dedent(text), PATH, read_file=read)


def refused(text: str, files: dict[str, str] | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        parse(text, files)
    return str(info.value)


FULL = """\
    name: shop
    images:
      - tag: example/site:1.0
        build: ./site
        args: {NODE_VERSION: "18"}
      - tag: example/root:1
        import: ../root.tar
      - tag: shipmate/python:3.11
        bootstrap: true
    containers:
      web:
        image: example/site:1.0
        command: node server.js --port "8000"
        ports: ["80:8000", "127.0.0.1:9000:9000/udp", 5000, {container: 22, host: 2222}]
        env: {NODE_PORT: 8000, GREETING: "hi"}
        env_file: web.env
        volumes: ["./data:/data", "/etc/ssl:/ssl:ro", "cache:/var/cache"]
        labels: {team: shop}
        restart: no
        health:
          test: curl -f http://localhost:8000/
          interval: 500ms
          retries: 5
          wait: 1m
        depends_on: [db]
        replace: stop-first
        secrets: [GREETING]
      db:
        image: shipmate/python:3.11
        command: [sleep, infinity]
        health: {running_for: 3s}
"""


def test_full_manifest_builds_canonical_specs() -> None:
    m = parse(FULL, {"/srv/app/web.env": "# comment\nDB_URL=postgres://db/x\nNODE_PORT=1\n"})
    assert m.name == "shop"
    assert [c.name for c in m.containers] == ["db", "web"]  # dependencies first
    web = m.container("web")
    spec = web.spec
    assert spec.command == ("node", "server.js", "--port", "8000")
    assert spec.env_dict == {"NODE_PORT": "8000", "GREETING": "hi", "DB_URL": "postgres://db/x"}
    assert PortMapping(8000, 80) in spec.ports
    assert PortMapping(9000, 9000, "127.0.0.1", "udp") in spec.ports
    assert PortMapping(5000, 0) in spec.ports
    assert PortMapping(22, 2222) in spec.ports
    assert Mount("/data", "/srv/app/data") in spec.mounts
    assert Mount("/ssl", "/etc/ssl", read_only=True) in spec.mounts
    assert Mount("/var/cache", "cache") in spec.mounts
    assert spec.restart == "no"  # YAML 1.1 would have made this False
    assert spec.health == HealthCheck(("CMD-SHELL", "curl -f http://localhost:8000/"),
                                      interval=0.5, retries=5)
    assert web.wait == 60.0 and web.replace == "stop-first"
    assert web.is_secret("GREETING") and web.is_secret("API_TOKEN") and not web.is_secret("X")
    assert m.container("db").running_for == 3.0 and m.container("db").spec.health is None
    site, root, py = m.images
    assert (site.source, site.path, site.args) == ("build", "/srv/app/site",
                                                   (("NODE_VERSION", "18"),))
    assert (root.source, root.path) == ("import", "/srv/root.tar")
    assert py.source == "bootstrap"


def test_env_file_content_changes_the_spec_hash() -> None:
    one = parse(FULL, {"/srv/app/web.env": "DB_URL=a\n"}).container("web").spec
    two = parse(FULL, {"/srv/app/web.env": "DB_URL=b\n"}).container("web").spec
    assert spec_hash(one) != spec_hash(two)


def test_name_defaults_to_file_stem() -> None:
    assert parse("containers: {aa: {image: x:1}}").name == "stack"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("containers:\n  web:\n    image: x\n    imagee: y\n", 4, "unknown key 'imagee'"),
    ("containers:\n  web:\n    image: 3\n", 3, "image must be a string"),
    ("containers:\n  web:\n    image: x\n    ports: 80\n", 4, "ports must be a list"),
    ("containers:\n  web:\n    image: x\n    env: [A=1]\n", 4, "env must be a mapping"),
    ("containers:\n  web:\n    image: x\n    restart: sometimes\n", 4, "restart must be one"),
    ("containers:\n  web:\n    image: x\n    env: {A: yes}\n", 4, "string or a number"),
    ("containers:\n  web:\n    image: x\n    ports: ['80:x']\n", 4, "is not [IP:]"),
    ("containers:\n  web:\n    image: x\n    ports: ['70000:80']\n", 4, "out of range"),
    ("containers:\n  web:\n    image: x\n    volumes: ['data']\n", 4, "SOURCE:TARGET"),
    ("containers:\n  web:\n    image: x\n    volumes: ['a:rel']\n", 4, "absolute path"),
    ("containers:\n  web:\n    image: x\n  web:\n    image: y\n", 4, "duplicate key 'web'"),
    ("containers:\n  bad/name:\n    image: x\n", 2, "invalid container name"),
    ("containers:\n  w:\n    image: x\n", 2, "too short"),
    ("containers:\n  web:\n    command: x\n", 2, "`image` is required"),
    ("containers:\n  web:\n    image: x\n    health: {interval: 2}\n", 4, "needs `test`"),
    ("containers:\n  web:\n    image: x\n    health: {test: x, interval: soon}\n", 4,
     "duration"),
    ("containers:\n  web:\n    image: x\n    labels: {shipmate.x: y}\n", 4, "reserved"),
    ("bogus: 1\ncontainers: {}\n", 1, "unknown key 'bogus'"),
    ("containers:\n  web: {image: x\n", 3, "invalid YAML"),
    ("images:\n  - tag: a:1\n    build: .\n    import: x.tar\n"
     "containers: {}\n", 2, "exactly one of"),
    ("images:\n  - tag: example/a:1\n    bootstrap: true\ncontainers: {}\n", 3, "shipmate/*"),
])
def test_refusals_name_file_and_line(text: str, line: int, words: str) -> None:
    message = refused(text)
    assert f"{PATH}:{line}:" in message
    assert words in message


def test_host_port_conflict_names_both_lines() -> None:
    message = refused("""\
        containers:
          aa:
            image: x
            ports: ["8080:80"]
          bb:
            image: x
            ports:
              - "127.0.0.1:8080:8000"
    """)
    assert f"{PATH}:8:" in message and f"{PATH}:4" in message and "8080" in message


def test_same_port_other_protocol_or_address_is_fine() -> None:
    m = parse("""\
        containers:
          aa: {image: x, ports: ["8080:80", "127.0.0.1:9000:90"]}
          bb: {image: x, ports: ["8080:80/udp", "127.0.0.2:9000:90", "0:81"]}
          cc: {image: x, ports: ["81", "81"]}
    """)
    assert len(m.containers) == 3


def test_depends_on_cycle_and_unknown_refused() -> None:
    cyc = refused("""\
        containers:
          aa: {image: x, depends_on: [bb]}
          bb: {image: x, depends_on: [cc]}
          cc: {image: x, depends_on: [aa]}
    """)
    assert "cycle" in cyc and "aa -> bb -> cc -> aa" in cyc and f"{PATH}:2:" in cyc
    unknown = refused("containers:\n  aa: {image: x, depends_on: [zz]}\n")
    assert "'zz'" in unknown and f"{PATH}:2:" in unknown


def test_env_file_errors_name_the_env_file_line() -> None:
    message = refused("containers:\n  aa: {image: x, env_file: a.env}\n",
                      {"/srv/app/a.env": "A=1\nJUST_A_NAME\n"})
    assert "/srv/app/a.env:2" in message and f"{PATH}:2" in message


def test_missing_env_file_refused() -> None:
    assert "cannot read /srv/app/nope.env" in refused(
        "containers:\n  aa: {image: x, env_file: nope.env}\n")
