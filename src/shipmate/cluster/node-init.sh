#!/bin/sh
# shipmate-node-init: the entrypoint of a cluster node (a Docker-in-Docker container started by
# `shipmate cluster up`, with `docker run --init`, so tini is PID 1 and reaps orphans).
# Starts, in order: dockerd, the etcd member (when ETCD_NAME is set), then the Shipmate daemon,
# which is restarted if it exits. Logs go to /run/shipmate (bind-mounted from the host).
set -u
RUN_DIR=/run/shipmate
mkdir -p "$RUN_DIR" /var/lib/shipmate
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) node-init: $*" >>"$RUN_DIR/node.log"; }

# A machine started again after `cluster kill` keeps its filesystem but no process: clear the
# pid files of the previous boot, or dockerd refuses to start and the router would take a
# stale nginx pid (a different process in this new PID namespace) for its nginx.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid \
    /var/lib/shipmate/nginx/run/nginx.pid

# The inner bridge gets a subnet of its own so it never shadows the cluster network.
dockerd --host unix:///var/run/docker.sock --bip "${SHIPMATE_NODE_BIP:-10.253.0.1/24}" \
    >"$RUN_DIR/dockerd.log" 2>&1 &
i=0
until docker version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 300 ]; then log "dockerd did not answer within 30 s"; break; fi
    sleep 0.1
done
log "dockerd up"
# After a reboot (`cluster start` after `cluster kill`) no unit's container is really running:
# drop the previous boot's, so the agent starts what is placed here instead of adopting a
# container dockerd is about to mark dead.
stale=$(docker ps -aq --filter label=shipmate.machine)
if [ -n "$stale" ]; then
    # shellcheck disable=SC2086 # one word per container ID
    docker rm -f $stale >/dev/null 2>&1
    log "removed the previous boot's unit containers"
fi

if [ -n "${ETCD_NAME:-}" ]; then
    mkdir -p "$(dirname "$ETCD_DATA_DIR")"
    etcd >"$RUN_DIR/etcd.log" 2>&1 &
    log "etcd member $ETCD_NAME started"
fi

# Units run as the daemon's children; if it dies it is started again and adopts them.
while true; do
    log "starting shipmate daemon"
    shipmate daemon >>"$RUN_DIR/daemon.log" 2>&1
    log "shipmate daemon exited with status $?"
    sleep 1
done
