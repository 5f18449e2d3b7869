"""Image distribution between machines, the pure part: which machines to ask for an image, in
which order, at which URL, and who may ask (no I/O; :mod:`shipmate.daemon.image_transfer`
does the transfers).

There is no registry: an app image exists where it was built (the machine that received the
``git push``). A machine that must run a unit whose image it lacks asks its peers' daemons for
it over their TCP API (``GET /v1/images/REF``, a ``docker save`` stream it ``docker load``\\ s),
the machine the unit names as its image source first (``shipmate.image-source`` label), then
every other live machine. A daemon serves only Shipmate app images (label ``shipmate.app``),
and only to clients on the networks of its ``api_clients`` setting.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

from shipmate import netaddr
from shipmate.errors import ValidationError
from shipmate.spec.labels import APP_LABEL, IMAGE_SOURCE_LABEL

IMAGE_ROUTE = "/v1/images/{ref:.+}"
Network = netaddr.Network
client_allowed = netaddr.client_allowed

_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
# A name[:tag] reference (docker's grammar, narrowed): no '..', no leading '/' or '-'.
_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*"
                         r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$")


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it is an image ID (``sha256:`` + 64 hex) or a plain name[:tag]."""
    if _IMAGE_ID.fullmatch(ref):
        return ref
    if _IMAGE_NAME.fullmatch(ref) and ".." not in ref and not ref.startswith("sha256:"):
        return ref
    raise ValidationError(f"invalid image reference {ref!r}",
                          hint="give an image ID (sha256:...) or NAME:TAG")


def parse_networks(text: str) -> tuple[Network, ...]:
    """``api_clients`` (comma-separated CIDRs) as networks; a bad entry is a ConfigError."""
    return netaddr.parse_networks(text, "api_clients")


def servable(labels: Mapping[str, str]) -> bool:
    """Only Shipmate app images (built by the PaaS, labelled ``shipmate.app``) are served."""
    return bool(labels.get(APP_LABEL))


def image_url(address: str, port: int, ref: str, *, tls: bool = False) -> str:
    """``http[s]://ADDRESS:PORT/v1/images/REF`` (REF quoted; IPv6 addresses bracketed)."""
    host = f"[{address}]" if ":" in address else address
    scheme = "https" if tls else "http"
    return f"{scheme}://{host}:{port}/v1/images/{urllib.parse.quote(validate_ref(ref), safe='')}"


def source_hint(labels: Mapping[str, str]) -> str:
    """The machine a unit names as its image's source (empty when it names none)."""
    return labels.get(IMAGE_SOURCE_LABEL, "")


def sources(hint: str, machines: Mapping[str, str], self_id: str) -> list[tuple[str, str]]:
    """(machine, address) pairs to ask, in order: the hinted machine first, then the other
    live machines by ID; never this machine, never one without an address."""
    order = sorted(machines, key=lambda m: (m != hint, m))
    return [(m, machines[m]) for m in order if m != self_id and machines[m]]
