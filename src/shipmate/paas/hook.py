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
from shipmate.errors import ShipmateError
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
    tar = subprocess.run(["git", "archive", "--format=tar", new], check=True,
                         capture_output=True).stdout
    try:
        return asyncio.run(_deploy(app, new, tar))
    except ShipmateError as exc:
        _error(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
