# shipmate/node:18: Debian's nodejs and npm on shipmate/base.
ARG BASE=shipmate/base:bookworm
FROM ${BASE}
# APT_PROXY: an apt proxy (e.g. Shipmate's package cache, http://172.17.0.1:3142) used during
# the build only; http_proxy is honoured too (a predefined build argument).
ARG APT_PROXY=
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    if [ -n "$APT_PROXY" ]; then \
        echo "Acquire::http::Proxy \"$APT_PROXY\";" > /etc/apt/apt.conf.d/01shipmate-proxy; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends nodejs npm ca-certificates; \
    rm -f /etc/apt/apt.conf.d/01shipmate-proxy; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*
CMD ["node"]
