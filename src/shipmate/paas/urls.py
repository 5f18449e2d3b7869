"""Where an app answers: the URLs ``urls APP`` and the deploy output print. Pure.

As Dokku does once an app has a certificate, a name the certificate covers is printed as
``https://`` (on the router's HTTPS port): plain HTTP only redirects there. A name it does not
cover stays ``http://``, as the router keeps serving it over plain HTTP (docs/https.md), and
so does the app's own port, which the router serves over plain HTTP only.
"""

from __future__ import annotations

from collections.abc import Sequence

from shipmate.router.tlskeys import covered


def app_urls(names: Sequence[str], own_port: int | None, *, cert_names: Sequence[str] = (),
             http_port: int = 80, https_port: int = 0, public_ip: str = "") -> list[str]:
    """URLs for the app's host ``names`` (in order) and, when given, its ``own_port`` on
    ``public_ip``. ``cert_names``: the names of its certificate (none: no certificate);
    ``https_port`` 0 means this router serves no HTTPS."""
    secure = set(covered(names, cert_names)) if https_port else set()
    http = "" if http_port == 80 else f":{http_port}"
    https = "" if https_port == 443 else f":{https_port}"
    urls = [f"https://{n}{https}" if n in secure else f"http://{n}{http}" for n in names]
    if own_port:
        urls.append(f"http://{public_ip}:{own_port}")
    return urls
