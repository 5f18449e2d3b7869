"""Which commands a non-admin SSH key may run, and on which app: one table, checked before a
command runs (pure). The records behind it are read by :mod:`.acl`.

Rules (docs/security.md states them for users):

- Every CLI command is in :data:`SCOPES` (``tests/unit/paas/test_aclpolicy.py`` fails
  otherwise); a command missing from it needs an admin.
- ``admin``: only an admin key runs it: the cluster (``fleet``, ``cluster``), the keys and the
  access lists (``ssh-keys``, ``acl``), global settings (``domains:set-global``, global
  ``letsencrypt``, ``cache``, ``status``, ``info``), whatever makes an app (``apps:create``,
  ``apps:rename``, ``apps:clone``; a first ``git push`` too), the engine's shared image store
  (``git:from-image``, ``git:load-image``), storage directories and mounts, services.
- ``app``: a non-admin runs it on the apps granted to it (``acl:add APP NAME``); the app is
  the positional at ``position`` or the value of ``option`` (``events --app APP``). When an
  ``optional`` app is left out the command acts on every app, and needs an admin. The name
  ``shipmate`` is no app: it is the dashboard's route (``certs:add shipmate``), an admin's.
- ``granted``: anyone runs it, and sees only the apps granted (``apps:list``).
- ``anyone``: it touches no app or setting (``help``, ``import chef``).
- The SSH server checks the command line (:func:`check_line`); the CLI it starts checks again
  on what its parser made of the same line (:func:`check_parsed`), so that a line the two
  read differently is refused rather than let through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from shipmate.errors import ForbiddenError, ValidationError
from shipmate.paas.domains import DASHBOARD
from shipmate.paas.sshpolicy import positionals

#: Set by the SSH server in the CLI's environment for a non-admin key: the apps granted to it,
#: space-separated (absent for an admin).
GRANTED_ENV = "SHIPMATE_SSH_APPS"
Kind = Literal["admin", "app", "granted", "anyone"]


@dataclasses.dataclass(frozen=True)
class Scope:
    """Who may run one command (see the module's rules)."""

    kind: Kind
    #: ``app``: which positional names the app (0: the first after the command's name)
    position: int = 0
    #: ``app``: the option naming the app instead (``--app``)
    option: str = ""
    #: ``app``: the app may be left out (the command then acts on every app: admin only)
    optional: bool = False


ADMIN = Scope("admin")
ANYONE = Scope("anyone")
GRANTED = Scope("granted")
APP = Scope("app")


def _all(kind: str, verbs: str) -> dict[str, Scope]:
    return {f"{kind}:{verb}": ADMIN for verb in verbs.split()}


#: Every CLI command and who may run it (the one place this is declared).
SCOPES: Mapping[str, Scope] = {
    "apps:list": GRANTED,
    **dict.fromkeys(("apps:create", "apps:rename", "apps:clone"), ADMIN),
    **dict.fromkeys(("apps:destroy", "apps:exists", "apps:lock", "apps:unlock", "apps:report",
                     "config:set", "config:unset", "config:get", "config:show", "config:keys",
                     "config:export", "domains:add", "domains:remove", "domains:report", "urls",
                     "url", "ps:scale", "ps:report", "ps:restart", "ps:stop", "ps:start",
                     "ps:rebuild", "releases", "releases:rollback", "checks:report",
                     "checks:disable", "checks:enable", "checks:set", "logs", "run", "enter",
                     "resource:limit", "resource:reserve", "resource:limit-clear",
                     "resource:reserve-clear", "resource:report", "ports:set", "ports:add",
                     "ports:remove", "ports:clear", "ports:report", "ports:list"), APP),
    **dict.fromkeys(("domains:set-global", "domains:clear-global"), ADMIN),
    # HTTPS: an app's certificate is the app's; the ACME account and renewals of every app
    # are global
    **dict.fromkeys(("certs:add", "certs:generate", "certs:report", "certs:show",
                     "certs:remove", "certs:set", "letsencrypt:enable", "letsencrypt:disable",
                     "letsencrypt:revoke"), APP),
    "letsencrypt:auto-renew": Scope("app", optional=True),
    **_all("letsencrypt", "list set cron-job"),
    # storage: directories of the storage root are shared by every app, so making one and
    # mounting one are an admin's; an app's mounts may be read and removed
    **dict.fromkeys(("storage:list", "storage:report", "storage:unmount"), APP),
    **_all("storage", "ensure-directory mount"),
    # services are not apps and carry passwords: an admin creates and links them
    **{f"{kind}:{verb}": ADMIN for kind in ("postgres", "redis") for verb in (
        "create", "link", "unlink", "info", "list", "restart", "destroy", "export", "import",
        "connect", "backup", "backup-schedule", "backup-unschedule", "expose", "unexpose")},
    # the engine's images are shared by every app (a loaded tar may retag any of them)
    **_all("git", "from-image load-image"),
    **_all("ssh-keys", "add list remove"),
    **_all("acl", "add remove list"),
    **_all("users", "add list remove"),  # dashboard users (local only besides)
    **{f"fleet {verb}": ADMIN for verb in (
        "submit", "list-machines", "list-units", "list-unit-files", "load", "start", "stop",
        "unload", "destroy", "cat", "status", "journal")},
    **dict.fromkeys(("import chef", "import puppet"), ANYONE),
    "events": Scope("app", option="--app", optional=True),
    **dict.fromkeys(("status", "info", "cache stats", "cache serve", "cache gc", "daemon",
                     "up", "down", "plan", "apply", "images:bootstrap", "images:list"), ADMIN),
    **{f"cluster {verb}": ADMIN for verb in (
        "up", "down", "status", "kill", "start", "partition", "heal", "logs")},
    # an app's scheduled tasks (app.json cron): the app's own
    **dict.fromkeys(("cron:list", "cron:run", "cron:suspend", "cron:resume"), APP),
    # the whole platform's data, every app's and every secret: admins only (local-only too)
    **dict.fromkeys(("backup create", "backup restore", "backup verify"), ADMIN),
}


def app_named(name: str, args: Sequence[str]) -> str:
    """The app a command line names (``''`` when it names none or the command takes none);
    ``args`` are the words after the command's name."""
    scope = SCOPES.get(name, ADMIN)
    if scope.kind != "app":
        return ""
    if scope.option:
        return _option_value(args, scope.option)
    words = positionals(args)
    return words[scope.position] if len(words) > scope.position else ""


def _option_value(args: Sequence[str], option: str) -> str:
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(option + "="):
            return a[len(option) + 1:]
    return ""


def check_line(name: str, args: Sequence[str], key: str, granted: Collection[str]) -> str:
    """Check a command line (``name`` and the words after it) run by the non-admin ``key``
    to which ``granted`` apps are granted; returns the app it acts on ('' for none), or
    raises ForbiddenError (or ValidationError when a required app is missing)."""
    app = app_named(name, args)
    check_parsed(name, app, key, granted)
    return app


def check_parsed(name: str, app: str | None, key: str, granted: Collection[str]) -> None:
    """Check that the non-admin ``key`` may run command ``name`` on ``app`` (as the CLI's
    parser read it; None or '' when no app is named); raises ForbiddenError if not."""
    if not name:  # --help, --version
        return
    scope = SCOPES.get(name, ADMIN)
    if scope.kind in ("anyone", "granted"):
        return
    if scope.kind == "app" and app == DASHBOARD:
        raise ForbiddenError(f"User {key} does not have permissions to run {name} on "
                             f"{DASHBOARD} (the dashboard's route)",
                             hint="only an admin key may (docs/dashboard.md)")
    if scope.kind == "app" and app:
        if app in granted:
            return
        raise ForbiddenError(f"User {key} does not have permissions to run {name} on {app}",
                             hint=f"an admin grants it with `acl:add {app} {key}`; "
                                  "`apps:list` shows your apps")
    if scope.kind == "app" and not scope.optional:
        raise ValidationError("Please specify an app to run the command on",
                              hint=f"run `{name} APP`")
    usage = f"{name} {scope.option or ''} APP".replace("  ", " ")
    raise ForbiddenError(f"User {key} does not have permissions to run {name}",
                         hint=f"name one of your apps (`{usage}`)" if scope.kind == "app"
                         else "only an admin key may (docs/security.md)")


def check_git(push: bool, app: str, exists: bool, key: str, granted: Collection[str]) -> None:
    """Check that the non-admin ``key`` may ``git push`` to (``push``) or fetch ``app``; a
    push that would create the app needs an admin (admins create apps, then grant them)."""
    if push and not exists:
        raise ForbiddenError(f"User {key} does not have permissions to create apps",
                             hint=f"an admin creates it (`apps:create {app}`) and grants it "
                                  f"(`acl:add {app} {key}`)")
    if app not in granted:
        raise ForbiddenError(f"User {key} does not have permissions to "
                             f"{'push to' if push else 'fetch from'} {app}",
                             hint=f"an admin grants it with `acl:add {app} {key}`")


def granted_from_env(value: str) -> frozenset[str]:
    """The apps in :data:`GRANTED_ENV`'s value."""
    return frozenset(value.split())
