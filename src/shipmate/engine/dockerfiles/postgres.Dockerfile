# shipmate/postgres:15: Debian's postgresql-15 on shipmate/base, for postgres:create services.
# The data lives in $PGDATA, inside the volume mounted at /var/lib/postgresql/data.
ARG BASE=shipmate/base:bookworm
FROM ${BASE}
ARG APT_PROXY=
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    if [ -n "$APT_PROXY" ]; then \
        echo "Acquire::http::Proxy \"$APT_PROXY\";" > /etc/apt/apt.conf.d/01shipmate-proxy; \
    fi; \
    mkdir -p /etc/postgresql-common; \
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold \
        postgresql-15 postgresql-client-15; \
    rm -f /etc/apt/apt.conf.d/01shipmate-proxy; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /var/lib/postgresql/data /run/postgresql; \
    chown -R postgres:postgres /var/lib/postgresql /run/postgresql; \
    chmod 700 /var/lib/postgresql/data
# First start: initdb into a scratch directory of the volume, create the database, then move
# it into place in one rename, so a crash half-way never leaves a half-made PGDATA behind.
RUN printf '%s\n' \
    '#!/bin/sh' \
    'set -eu' \
    'if [ ! -s "$PGDATA/PG_VERSION" ]; then' \
    '  tmp="$PGDATA.init"; rm -rf "$tmp"' \
    '  pw="$(mktemp)"; printf "%s" "$POSTGRES_PASSWORD" > "$pw"' \
    '  initdb -D "$tmp" -U postgres --pwfile="$pw" --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C >/dev/null' \
    '  rm -f "$pw"' \
    '  echo "listen_addresses = '"'"'*'"'"'" >> "$tmp/postgresql.conf"' \
    '  echo "host all all all scram-sha-256" >> "$tmp/pg_hba.conf"' \
    '  echo "CREATE DATABASE \"$POSTGRES_DB\";" | postgres --single -D "$tmp" -j postgres >/dev/null' \
    '  sync; mv "$tmp" "$PGDATA"; sync' \
    '  echo "shipmate-postgres: initialised database $POSTGRES_DB"' \
    'fi' \
    'exec postgres -D "$PGDATA" "$@"' \
    > /usr/local/bin/shipmate-postgres; \
    chmod 755 /usr/local/bin/shipmate-postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data/pgdata
USER postgres
EXPOSE 5432
CMD ["shipmate-postgres"]
