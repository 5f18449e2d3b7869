"""The pre-receive hook (run by git inside ``git-receive-pack``): for the deploy branch, send
the pushed tree to the daemon to build and deploy, streaming its output to the pusher.

A non-zero exit rejects the push: the ref is not updated and the running release keeps
serving. Environment (set by the SSH server): ``SHIPMATE_APP`` and the daemon settings.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from shipmate import config
from shipmate.errors import ShipmateError, ValidationError
from shipmate.httpapi.client import DaemonClient
from shipmate.spec.names import validate_app_name

DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")
ZERO = "0" * 40


def _error(message: str) -> None:
    for line in str(message).splitlines():
        print(f" !     {line}", file=sys.stderr, flush=True)


async def _deploy(app: str, rev: str, tar: bytes) -> int:
    client = DaemonClient(config.load().socket)
    async for line in client.stream("POST", f"/v1/apps/{app}/builds", params={"rev": rev},
                                    data=tar):
        print(line, flush=True)
    return 0


def main() -> int:
    """Read ``old new ref`` lines; deploy the last deploy-branch update."""
    app = validate_app_name(os.environ["SHIPMATE_APP"])
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    deploys = [(new, ref) for _, new, ref in updates if ref in DEPLOY_BRANCHES]
    for ref in (ref for _, _, ref in updates if ref not in DEPLOY_BRANCHES):
        print(f"-----> {ref} is not deployed (push main or master to deploy)", flush=True)
    if not deploys:
        return 0
    new, ref = deploys[-1]
    if new == ZERO:
        _error(f"Refusing to delete {ref}: it is what {app} deploys from")
        return 1
    try:
        cfg = config.load()
        tar = archive(new, cfg.push_max_bytes)
        return asyncio.run(_deploy(app, new, tar))
    except ShipmateError as exc:
        _error(str(exc))
        return 1


def archive(rev: str, max_bytes: int) -> bytes:
    """The tree of ``rev`` as a tar (``git archive``), refused past ``max_bytes``."""
    proc = subprocess.Popen(["git", "archive", "--format=tar", rev],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    tar = proc.stdout.read(max_bytes + 1)
    if len(tar) > max_bytes:
        proc.kill()
        proc.wait()
        raise ValidationError(
            f"the pushed tree is larger than push_max_bytes ({max_bytes // 2**20} MiB)",
            hint="leave build outputs and large assets out of the repository, or raise "
                 "push_max_bytes (SHIPMATE_PUSH_MAX_BYTES) on the server")
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    if proc.wait() != 0:
        raise ValidationError(f"cannot read the pushed tree: {err[-1] if err else 'git failed'}")
    return tar


if __name__ == "__main__":
    sys.exit(main())
