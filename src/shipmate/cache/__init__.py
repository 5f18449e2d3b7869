"""Shipmate's package cache: apt (apt-cacher-ng compatible), PyPI and npm, on port 3142.

``build_settings`` gives the ``docker build`` arguments that point a build at the cache.
"""

from __future__ import annotations

__all__ = ["build_settings"]


def build_settings(host: str, port: int) -> dict[str, str]:
    """Build arguments that make apt, pip and npm inside ``docker build`` use the cache at
    ``host:port`` (e.g. the bridge gateway ``172.17.0.1:3142``).

    A Dockerfile uses them by declaring ``ARG`` (they are not baked into the image unless it
    copies them into ``ENV``): ``ARG PIP_INDEX_URL PIP_TRUSTED_HOST NPM_CONFIG_REGISTRY`` make
    pip and npm pick them up from the environment of ``RUN``; apt reads
    ``Acquire::http::Proxy`` from ``-o Acquire::http::Proxy=$APT_PROXY`` (or a conf file the
    same ``RUN`` writes and removes). ``http_proxy`` is deliberately not set: it would send
    every HTTP client in the build through the cache, which is not an open proxy.
    """
    origin = f"http://{host}:{port}"
    return {
        "APT_PROXY": origin,
        "PIP_INDEX_URL": f"{origin}/pypi/simple/",
        "PIP_TRUSTED_HOST": host,
        "NPM_CONFIG_REGISTRY": f"{origin}/npm/",
        "SHIPMATE_CACHE_URL": origin,
    }
