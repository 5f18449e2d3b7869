#!/bin/sh
# shipmate-node-init: the entrypoint of a cluster node (a Docker-in-Docker container started by
# `shipmate cluster up`, with `docker run --init`, so tini is PID 1 and reaps orphans).
# Starts dockerd, then, once the machine is in a cluster, `shipmate cluster supervise` (its etcd
# member and Shipmate daemon). Logs go to /run/shipmate (bind-mounted from the host).
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

# `shipmate cluster up` makes the machine part of the cluster through `docker exec`:
# `shipmate cluster init` on node-1, `shipmate cluster join` on the others, as on real machines.
# They write /var/lib/shipmate/machine.json and start the supervisor (etcd member + daemon).
# After a reboot (`cluster start` after `cluster kill`) nobody runs them again: start the
# supervisor here, whenever the machine is in a cluster and no supervisor holds the lock.
while true; do
    if [ -f /var/lib/shipmate/machine.json ] &&
        flock -n /var/lib/shipmate/supervise.lock true; then
        log "starting the cluster supervisor (etcd member, shipmate daemon)"
        shipmate cluster supervise >>"$RUN_DIR/supervise.log" 2>&1
        log "the cluster supervisor exited with status $?"
    fi
    sleep 1
done
