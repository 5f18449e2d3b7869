"""PyPI and npm mirror rewriting, pure: index bodies in, bodies whose file links point back at
the cache out, plus the hashes the index promises for those files (*hints*, checked when the
file is downloaded: a client strips ``#sha256=`` before asking, so the cache must remember it)."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any
from urllib.parse import urljoin

from shipmate.cache.policy import Refused, parse_origin

Hint = tuple[str, str, str]  # (upstream URL, hash algorithm, hex digest)

_HREF = re.compile(rb'href="([^"]*)"')
_ANCHOR = re.compile(rb"<a\s[^>]*>", re.I)
# PEP 714's name for the PEP 658 attribute first, then the old one
_METADATA_ATTRS = (re.compile(rb'data-core-metadata="([^"]*)"'),
                   re.compile(rb'data-dist-info-metadata="([^"]*)"'))
_HASHES = ("sha256", "sha512")


def file_link(base: str, fmt: str, url: str) -> str:
    """The cache URL serving the artifact at upstream ``url`` (``fmt``: pypi or npm)."""
    try:
        origin, path = parse_origin(url)
    except Refused:
        return url  # leave what we cannot parse alone: the client will fail visibly
    sub = "files" if fmt == "pypi" else "_files"
    return f"{base}/{fmt}/{sub}/{origin.scheme}/{origin.netloc}{path}"


def _split_fragment(url: str) -> tuple[str, str]:
    bare, sep, frag = url.partition("#")
    return bare, frag if sep else ""


def rewrite_pypi_html(body: bytes, page_url: str, base: str) -> bytes:
    """Point every ``href`` of a PEP 503 simple page at the cache, keeping ``#sha256=``."""

    def sub(m: re.Match[bytes]) -> bytes:
        href = html.unescape(m.group(1).decode("utf-8", "replace"))
        bare, frag = _split_fragment(urljoin(page_url, href))
        new = file_link(base, "pypi", bare) + (f"#{frag}" if frag else "")
        return b'href="' + html.escape(new, quote=True).encode() + b'"'

    return _HREF.sub(sub, body)


def pypi_html_hints(body: bytes, page_url: str) -> list[Hint]:
    """The ``#sha256=`` (or sha512) fragments of a simple page's links, and the hashes its
    ``data-core-metadata`` attributes promise for the files' PEP 658 ``.metadata``."""
    hints = []
    for anchor in _ANCHOR.finditer(body):
        m = _HREF.search(anchor.group(0))
        if m is None:
            continue
        href = html.unescape(m.group(1).decode("utf-8", "replace"))
        bare, frag = _split_fragment(urljoin(page_url, href))
        algo, sep, digest = frag.partition("=")
        if sep and algo in _HASHES:
            hints.append((bare, algo, digest.lower()))
        for attr in _METADATA_ATTRS:
            meta = attr.search(anchor.group(0))
            if meta is not None:
                value = html.unescape(meta.group(1).decode("utf-8", "replace"))
                algo, sep, digest = value.partition("=")
                if sep and algo in _HASHES:
                    hints.append((bare + ".metadata", algo, digest.lower()))
                break
    return hints


def rewrite_pypi_json(body: bytes, page_url: str, base: str) -> bytes:
    """Point ``files[].url`` of a PEP 691 JSON page at the cache."""
    doc = json.loads(body)
    for f in doc.get("files", []):
        if isinstance(f, dict) and isinstance(f.get("url"), str):
            f["url"] = file_link(base, "pypi", urljoin(page_url, f["url"]))
    return json.dumps(doc).encode()


def pypi_json_hints(body: bytes, page_url: str) -> list[Hint]:
    """``files[].hashes.sha256`` of a PEP 691 JSON page, and the hash its ``core-metadata``
    (or older ``dist-info-metadata``) promises for each file's PEP 658 ``.metadata``."""
    hints = []
    for f in json.loads(body).get("files", []):
        if not isinstance(f, dict) or not isinstance(f.get("url"), str):
            continue
        url = urljoin(page_url, f["url"])
        hashes = f.get("hashes") or {}
        if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
            hints.append((url, "sha256", hashes["sha256"].lower()))
        meta = f.get("core-metadata", f.get("dist-info-metadata"))
        if isinstance(meta, dict) and isinstance(meta.get("sha256"), str):
            hints.append((url + ".metadata", "sha256", meta["sha256"].lower()))
    return hints


def _versions(doc: Any) -> list[dict[str, Any]]:
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(versions, dict):
        return []
    return [v for v in versions.values() if isinstance(v, dict) and isinstance(v.get("dist"), dict)]


def rewrite_npm(body: bytes, base: str) -> bytes:
    """Point every ``versions[*].dist.tarball`` of npm metadata at the cache."""
    doc = json.loads(body)
    for v in _versions(doc):
        if isinstance(v["dist"].get("tarball"), str):
            v["dist"]["tarball"] = file_link(base, "npm", v["dist"]["tarball"])
    return json.dumps(doc).encode()


def npm_hints(body: bytes) -> list[Hint]:
    """``dist.integrity`` (sha512, else the legacy sha1 ``shasum``) of every version."""
    hints = []
    for v in _versions(json.loads(body)):
        dist = v["dist"]
        url = dist.get("tarball")
        if not isinstance(url, str):
            continue
        integrity = dist.get("integrity")
        sri = _sri_sha512(integrity) if isinstance(integrity, str) else None
        if sri:
            hints.append((url, "sha512", sri))
        elif isinstance(dist.get("shasum"), str):
            hints.append((url, "sha1", dist["shasum"].lower()))
    return hints


def _sri_sha512(integrity: str) -> str | None:
    for item in integrity.split():
        algo, _, b64 = item.partition("-")
        if algo == "sha512":
            try:
                return base64.b64decode(b64, validate=True).hex()
            except ValueError:
                return None
    return None
