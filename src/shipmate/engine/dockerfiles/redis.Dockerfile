# shipmate/redis:7: Debian's redis-server on shipmate/base, for redis:create services.
ARG BASE=shipmate/base:bookworm
FROM ${BASE}
ARG APT_PROXY=
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    if [ -n "$APT_PROXY" ]; then \
        echo "Acquire::http::Proxy \"$APT_PROXY\";" > /etc/apt/apt.conf.d/01shipmate-proxy; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends redis-server redis-tools; \
    rm -f /etc/apt/apt.conf.d/01shipmate-proxy; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /data; \
    chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes"]
