"""The cluster's one door to the host's Docker: the ``docker`` command line.

Nodes need options the engine adapter's container spec does not model (capabilities, security
options, cgroup namespace, fixed addresses on a network, ``--init``) and streaming a
``docker save`` into a ``docker exec -i NODE docker load``; the CLI does all of that plainly.
Every failure becomes a :class:`ClusterError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

from shipmate.clock import within
from shipmate.errors import ClusterError

_TAIL = 2000


def _docker() -> str:
    binary = shutil.which("docker")
    if binary is None:
        raise ClusterError("the docker command is not installed",
                           hint="install Debian's docker.io (scripts/bootstrap does)")
    return binary


async def run(args: Sequence[str], *, check: bool = True, stdin: bytes | None = None,
              timeout: float = 120.0) -> tuple[int, str]:
    """``docker ARGS``: exit status and combined output; a non-zero status raises unless
    ``check`` is False."""
    proc = await asyncio.create_subprocess_exec(
        _docker(), *args, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await within(proc.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise ClusterError(f"docker {' '.join(args[:3])} ... did not finish in {timeout:.0f}s",
                           hint="is the Docker engine overloaded? see `docker ps`") from None
    text = out.decode("utf-8", "replace")
    code = proc.returncode or 0
    if check and code != 0:
        raise ClusterError(f"docker {' '.join(args[:3])} failed (status {code}): "
                           f"{text.strip()[-_TAIL:]}",
                           hint="see the message above; `shipmate cluster status` shows nodes")
    return code, text


async def inspect(kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """``docker KIND inspect NAMES`` decoded; missing objects are left out."""
    if not names:
        return []
    _, out = await run([kind, "inspect", *names], check=False)
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        return []  # nothing matched: docker prints an error, not JSON
    return [d for d in data if isinstance(d, dict)]


async def containers(label: str) -> list[dict[str, Any]]:
    """Every container (any state) carrying ``label`` (``key=value``), inspected."""
    _, out = await run(["ps", "-aq", "--no-trunc", "--filter", f"label={label}"])
    return await inspect("container", out.split())


async def pipe(source: Sequence[str], sink: Sequence[str], *, timeout: float = 600.0) -> str:
    """``docker SOURCE | docker SINK`` (e.g. save into a node's load) without a shell; the
    sink's output. Either side failing raises."""
    docker = _docker()
    read_fd, write_fd = os.pipe()
    try:
        src = await asyncio.create_subprocess_exec(
            docker, *source, stdout=write_fd, stderr=asyncio.subprocess.PIPE)
        dst = await asyncio.create_subprocess_exec(
            docker, *sink, stdin=read_fd, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    try:
        (_, err), (out, _) = await within(
            asyncio.gather(src.communicate(), dst.communicate()), timeout)
    except TimeoutError:
        for proc in (src, dst):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        raise ClusterError(f"docker {source[0]} | docker {' '.join(sink[:3])} timed out") from None
    if src.returncode or dst.returncode:
        detail = (err or b"").decode("utf-8", "replace") + out.decode("utf-8", "replace")
        raise ClusterError(f"docker {source[0]} | docker {' '.join(sink[:3])} failed: "
                           f"{detail.strip()[-_TAIL:]}")
    return out.decode("utf-8", "replace")
