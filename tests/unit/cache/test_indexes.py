"""Mirror rewriting and Debian index parsing (pure)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from shipmate.cache import debian, mirrors

PAGE = b"""<html><body>
<a href="https://files.pythonhosted.org/packages/aa/six-1.16.0.whl#sha256=ABC123">six</a>
<a href="../../packages/bb/six-1.0.tar.gz#sha256=def456" data-requires-python="&gt;=3">x</a>
<a href="https://files.pythonhosted.org/packages/cc/old.tar.gz">old</a>
</body></html>"""


def test_pypi_html_rewrite_keeps_fragments() -> None:
    out = mirrors.rewrite_pypi_html(PAGE, "https://pypi.org/simple/six/", "http://h:3142")
    assert (b'href="http://h:3142/pypi/files/https/files.pythonhosted.org/packages/aa/'
            b'six-1.16.0.whl#sha256=ABC123"') in out
    assert b'href="http://h:3142/pypi/files/https/pypi.org/packages/bb/six-1.0.tar.gz#sha256' in out
    assert b'data-requires-python="&gt;=3"' in out


def test_pypi_html_hints() -> None:
    hints = mirrors.pypi_html_hints(PAGE, "https://pypi.org/simple/six/")
    assert hints == [
        ("https://files.pythonhosted.org/packages/aa/six-1.16.0.whl", "sha256", "abc123"),
        ("https://pypi.org/packages/bb/six-1.0.tar.gz", "sha256", "def456"),
    ]


def test_pypi_metadata_hints_from_html() -> None:
    page = (b'<a href="https://f.org/p/a-1.whl#sha256=AA" data-core-metadata="sha256=BB" '
            b'data-dist-info-metadata="sha256=BB">a</a>\n'
            b'<a data-dist-info-metadata="sha256=CC" href="/p/b-1.whl#sha256=DD">b</a>\n'
            b'<a href="/p/c-1.whl#sha256=EE" data-core-metadata="true">c</a>\n')
    assert mirrors.pypi_html_hints(page, "https://pypi.org/simple/a/") == [
        ("https://f.org/p/a-1.whl", "sha256", "aa"),
        ("https://f.org/p/a-1.whl.metadata", "sha256", "bb"),
        ("https://pypi.org/p/b-1.whl", "sha256", "dd"),
        ("https://pypi.org/p/b-1.whl.metadata", "sha256", "cc"),
        ("https://pypi.org/p/c-1.whl", "sha256", "ee"),
    ]


def test_pypi_metadata_hints_from_json() -> None:
    doc = {"files": [
        {"url": "https://f.org/p/a-1.whl", "hashes": {"sha256": "AA"},
         "core-metadata": {"sha256": "BB"}},
        {"url": "https://f.org/p/b-1.whl", "hashes": {"sha256": "CC"},
         "dist-info-metadata": {"sha256": "DD"}},
        {"url": "https://f.org/p/c-1.whl", "hashes": {"sha256": "EE"}, "core-metadata": True},
        "not a dict"]}
    assert mirrors.pypi_json_hints(json.dumps(doc).encode(), "https://pypi.org/simple/a/") == [
        ("https://f.org/p/a-1.whl", "sha256", "aa"),
        ("https://f.org/p/a-1.whl.metadata", "sha256", "bb"),
        ("https://f.org/p/b-1.whl", "sha256", "cc"),
        ("https://f.org/p/b-1.whl.metadata", "sha256", "dd"),
        ("https://f.org/p/c-1.whl", "sha256", "ee"),
    ]


def test_pypi_json() -> None:
    doc = {"files": [{"url": "https://files.pythonhosted.org/p/a.whl",
                      "hashes": {"sha256": "AA"}}, {"url": "x", "hashes": {}}]}
    body = json.dumps(doc).encode()
    out = json.loads(mirrors.rewrite_pypi_json(body, "https://pypi.org/simple/a/", "http://h"))
    assert out["files"][0]["url"] == "http://h/pypi/files/https/files.pythonhosted.org/p/a.whl"
    assert out["files"][1]["url"] == "http://h/pypi/files/https/pypi.org/simple/a/x"
    assert mirrors.pypi_json_hints(body, "https://pypi.org/simple/a/") == [
        ("https://files.pythonhosted.org/p/a.whl", "sha256", "aa")]


def test_npm_rewrite_and_integrity() -> None:
    digest = hashlib.sha512(b"tgz").digest()
    doc = {"versions": {
        "1.0.0": {"dist": {"tarball": "https://registry.npmjs.org/a/-/a-1.0.0.tgz",
                           "integrity": "sha512-" + base64.b64encode(digest).decode()}},
        "0.1.0": {"dist": {"tarball": "https://registry.npmjs.org/a/-/a-0.1.0.tgz",
                           "shasum": "ABCD"}},
        "bad": "not a dict"}}
    body = json.dumps(doc).encode()
    out = json.loads(mirrors.rewrite_npm(body, "http://h"))
    assert out["versions"]["1.0.0"]["dist"]["tarball"] == (
        "http://h/npm/_files/https/registry.npmjs.org/a/-/a-1.0.0.tgz")
    assert mirrors.npm_hints(body) == [
        ("https://registry.npmjs.org/a/-/a-1.0.0.tgz", "sha512", digest.hex()),
        ("https://registry.npmjs.org/a/-/a-0.1.0.tgz", "sha1", "abcd")]


RELEASE = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Debian
MD5Sum:
 0123 100 main/binary-amd64/Packages.xz
SHA256:
 AAAA 100 main/binary-amd64/Packages.xz
 bbbb 200 main/binary-amd64/Packages
 cccc 300 main/i18n/Translation-en.bz2
 dddd 10 main/binary-amd64/Release
 EEEE 20 main/source/Sources.xz
-----BEGIN PGP SIGNATURE-----
"""


def test_release_hints_cover_every_index_it_lists() -> None:
    url = "http://deb.debian.org/debian/dists/bookworm/InRelease"
    assert debian.is_release(url) and not debian.is_release("http://h/debian/pool/Release.deb")
    hints = debian.release_hints(RELEASE, url)
    base = "http://deb.debian.org/debian/dists/bookworm/main/"
    assert hints == [
        (base + "binary-amd64/Packages.xz", "sha256", "aaaa"),
        (base + "binary-amd64/Packages", "sha256", "bbbb"),
        (base + "i18n/Translation-en.bz2", "sha256", "cccc"),
        (base + "binary-amd64/Release", "sha256", "dddd"),
        (base + "source/Sources.xz", "sha256", "eeee"),
    ]


def test_release_hints_stay_under_the_release() -> None:
    text = "SHA256:\n 11 1 ../../../etc/passwd\n 22 2 /abs/Packages\n 33 3 main/i18n/Index\n"
    hints = debian.release_hints(text, "http://d/debian/dists/bookworm/Release")
    assert hints == [("http://d/debian/dists/bookworm/main/i18n/Index", "sha256", "33")]


def test_a_release_speaks_for_its_components_only() -> None:
    url = "http://d/debian/dists/stretch/InRelease"
    text = "SHA256:\n 11 1 main/binary-amd64/Packages\n 22 2 contrib/i18n/Index\n 33 3 Top\n"
    hints = debian.release_hints(text, url)
    assert debian.release_scope(hints, url) == [
        "http://d/debian/dists/stretch/Top", "http://d/debian/dists/stretch/contrib/",
        "http://d/debian/dists/stretch/main/"]  # not dists/stretch/updates/, a suite of its own
    assert debian.release_scope([], url) == []  # a per-architecture Release lists nothing


@pytest.mark.parametrize(("path", "kind"), [
    ("dists/bookworm/main/binary-amd64/Packages.xz", debian.Index.PACKAGES),
    ("dists/bookworm/main/binary-amd64/Packages", debian.Index.PACKAGES),
    ("dists/bookworm/main/binary-arm64/by-hash/SHA256/ab12", debian.Index.PACKAGES),
    ("dists/bookworm/main/debian-installer/binary-amd64/Packages.gz", debian.Index.PACKAGES),
    ("dists/bookworm/main/source/Sources.xz", debian.Index.SOURCES),
    ("dists/bookworm/main/source/by-hash/SHA256/ab12", debian.Index.SOURCES),
    ("dists/bookworm/main/i18n/by-hash/SHA256/ab12", None),
    ("dists/bookworm/main/i18n/Translation-en.bz2", None),
    ("dists/bookworm/main/Contents-amd64.gz", None),
    ("dists/bookworm/InRelease", None),
    ("pool/main/p/Packages.xz", None),  # not under dists/: a file in the pool
])
def test_index_kind(path: str, kind: debian.Index | None) -> None:
    assert debian.index_kind(f"http://d/debian/{path}") is kind


def test_packages_hints() -> None:
    text = ("Package: hello\nFilename: pool/main/h/hello/hello_1_amd64.deb\nSHA256: AB\n\n"
            "Package: libstdc++6\nFilename: pool/main/g/gcc/libstdc++6_1_amd64.deb\nSize: 3\n"
            "SHA256: cd\n\nPackage: nohash\nFilename: pool/x.deb\n\n"
            "Package: last\nFilename: pool/l.deb\nSHA256: ef")
    root = debian.archive_root("http://d/debian/dists/bookworm/main/binary-amd64/Packages")
    assert root == "http://d/debian/"
    raw = text.encode()
    blocks = [raw[i:i + 7] for i in range(0, len(raw), 7)]  # block edges anywhere
    assert list(debian.packages_hints(blocks, root)) == list(debian.packages_hints([raw], root))
    assert list(debian.packages_hints(blocks, root)) == [
        ("http://d/debian/pool/main/h/hello/hello_1_amd64.deb", "sha256", "ab"),
        ("http://d/debian/pool/main/g/gcc/libstdc++6_1_amd64.deb", "sha256", "cd"),
        ("http://d/debian/pool/l.deb", "sha256", "ef"),
    ]


SOURCES = """Package: hello
Binary: hello
Directory: pool/main/h/hello
Checksums-Sha1:
 9999 1 hello_2.10-3.dsc
Checksums-Sha256:
 AA01 1950 hello_2.10-3.dsc
 aa02 725946 hello_2.10.orig.tar.gz
 aa03 12688 hello_2.10-3.debian.tar.xz
Files:
 8888 1 hello_2.10-3.dsc

Package: nodir
Checksums-Sha256:
 bb01 1 nodir_1.dsc

Package: evil
Checksums-Sha256:
 cc01 1 ../../../../etc/passwd
 cc02 2 evil_1.dsc
Directory: pool/main/e/evil
Section: misc

Package: last
Directory: pool/main/l/last
Checksums-Sha256:
 dd01 3 last_1.dsc"""


def test_sources_hints() -> None:
    root = "http://d/debian/"
    raw = SOURCES.encode()
    blocks = [raw[i:i + 5] for i in range(0, len(raw), 5)]  # block edges anywhere
    assert list(debian.sources_hints(blocks, root)) == list(debian.sources_hints([raw], root))
    pool = root + "pool/main/"
    assert list(debian.sources_hints(blocks, root)) == [
        (pool + "h/hello/hello_2.10-3.dsc", "sha256", "aa01"),
        (pool + "h/hello/hello_2.10.orig.tar.gz", "sha256", "aa02"),
        (pool + "h/hello/hello_2.10-3.debian.tar.xz", "sha256", "aa03"),
        (pool + "e/evil/evil_1.dsc", "sha256", "cc02"),
        (pool + "l/last/last_1.dsc", "sha256", "dd01"),
    ]
    assert debian.hints_of(debian.Index.SOURCES) is debian.sources_hints
    assert debian.hints_of(debian.Index.PACKAGES) is debian.packages_hints


def test_compression_sniffing() -> None:
    assert debian.compression(b"\xfd7zXZ\x00\x00") == "xz"
    assert debian.compression(b"\x1f\x8b\x08") == "gz"
    assert debian.compression(b"BZh91AY") == "bz2"
    assert debian.compression(b"Package:") == "none"
