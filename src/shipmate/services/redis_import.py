"""``redis:import NAME < dump.rdb``: replace a Redis service's data with an RDB snapshot.

Redis has no restore command, so the data files are replaced while the server is stopped:

1. the upload must look like an RDB file (it starts with ``REDIS``), else nothing happens;
2. the service's unit is stopped (cleanly: the server writes its AOF out);
3. a one-off container with the service's volume moves the current data files into
   ``before-import/`` in the volume (the previous copy there is dropped), loads the dump in
   a private server with no port, and turns ``appendonly`` on there, which rewrites the AOF
   from the loaded data: the AOF, which is what the service loads at start, now holds the
   import. If the dump does not load, the old files are put back;
4. the unit starts again (also after a failure) and the import is checked: the running
   service holds as many keys as the loaded dump.
"""

from __future__ import annotations

import asyncio

from shipmate.errors import ShipmateError, ValidationError
from shipmate.services.jobs import Scratch, connect_argv, run_job
from shipmate.services.manager import Emit, ServiceManager
from shipmate.services.model import Service
from shipmate.spec.container import Mount

_SCRIPT = r"""
cd /data || exit 1
rm -rf before-import && mkdir before-import || exit 1
for f in appendonlydir appendonly.aof dump.rdb; do
  if [ -e "$f" ]; then mv "$f" before-import/ || exit 1; fi
done
back() { cat /tmp/load.log; rm -rf appendonlydir dump.rdb temp-*; mv before-import/* . 2>/dev/null
         chown -R redis:redis /data; exit 1; }
cp /dump/dump dump.rdb || back
redis-server --dir /data --dbfilename dump.rdb --appendonly no --port 0 \
  --unixsocket /tmp/r.sock --save '' >/tmp/load.log 2>&1 &
pid=$!
cli() { redis-cli -s /tmp/r.sock "$@"; }
i=0
until [ "$(cli PING 2>/dev/null)" = PONG ]; do
  kill -0 $pid 2>/dev/null || { echo "the dump does not load:"; back; }
  i=$((i+1)); [ $i -lt 6000 ] || { kill $pid; echo "the dump did not load in 10 minutes"; back; }
  sleep 0.1
done
keys=$(cli DBSIZE)
cli CONFIG SET appendonly yes >/dev/null || { kill $pid; back; }
until cli INFO persistence | grep -q '^aof_rewrite_in_progress:0' \
  && cli INFO persistence | grep -q '^aof_rewrite_scheduled:0' \
  && cli INFO persistence | grep -q '^aof_last_bgrewrite_status:ok' && [ -d appendonlydir ]; do
  kill -0 $pid 2>/dev/null || { echo "rewriting the AOF failed:"; back; }
  sleep 0.1
done
cli SHUTDOWN NOSAVE >/dev/null 2>&1; wait $pid
chown -R redis:redis /data
echo "keys: $keys"
"""


def check_rdb(path: str) -> None:
    """Refuse an upload that is not an RDB file (before anything is stopped)."""
    with open(path, "rb") as fh:
        if fh.read(5) != b"REDIS":
            raise ValidationError("That is not an RDB dump (it does not start with REDIS)",
                                  hint="send a file made by redis:export or redis-cli --rdb")


async def import_rdb(manager: ServiceManager, service: Service, scratch: Scratch,
                     emit: Emit) -> int:
    """Replace the service's data with the RDB in ``scratch``; the number of keys."""
    await asyncio.to_thread(check_rdb, scratch.file)
    engine = manager.require_engine()
    emit(f"-----> Stopping {service.container}")
    await manager.registry.set_desired(service.unit, "loaded")
    await manager.wait_stopped(service)
    try:
        emit("-----> Replacing its data (the previous files are kept in before-import/)")
        code, out = await run_job(engine, service, ["/bin/sh", "-c", _SCRIPT], scratch,
                                  mounts=[Mount(service.spec.data_dir, service.volume)])
    finally:
        emit(f"-----> Starting {service.container}")
        await manager.registry.set_desired(service.unit, "launched")
        await manager.wait_ready(service)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if code != 0 or not last.startswith("keys: "):
        raise ShipmateError(f"redis:import {service.name} failed; its data is unchanged:\n"
                            f"{out[-2000:]}")
    return await _verify(manager, service, scratch, int(last.split()[1]))


async def _verify(manager: ServiceManager, service: Service, scratch: Scratch,
                  keys: int) -> int:
    with open(scratch.file, "w") as fh:  # noqa: ASYNC230 - a few bytes into a local scratch
        fh.write("DBSIZE\n")
    code, out = await run_job(manager.require_engine(), service, connect_argv(service),
                              scratch)
    found = out.strip().splitlines()[-1] if out.strip() else ""
    if code != 0 or found != str(keys):
        raise ShipmateError(f"redis:import {service.name}: the dump held {keys} keys but the "
                            f"service has {found or 'none'}:\n{out[-1000:]}")
    return keys
