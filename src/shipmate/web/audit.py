"""Which API requests are changes, and how each is told in the audit trail (pure).

:data:`AUDITED` maps a route of the daemon's API (method and aiohttp's canonical path) to a
function that names the change: the verb users know (``config:set``, ``fleet start``), the app,
and a short summary. The middleware (:mod:`.audit_http`) records one event per such request.
:data:`NOT_AUDITED` lists the requests that use POST but change nothing. Every other request
that is not a GET or HEAD is still recorded, under its method and path, so a route added
without an entry here is never left out of the trail (and ``tests/unit/web/test_audit.py``
fails until it gets one).

Summaries hold names only: config keys without their values, unit names without their text,
no certificate, key or command argument. A describer gets the route's path parameters, the
query and, when its entry says so, the JSON body; the push's tar and a certificate upload
are never read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from shipmate.spec.names import APP_NAME

Body = Mapping[str, Any]
Params = Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Described:
    """How one change is told: verb, app (may be empty) and summary."""

    verb: str
    app: str = ""
    summary: str = ""


Describer = Callable[[Params, Params, Body], Described]


@dataclasses.dataclass(frozen=True)
class Audited:
    """One audited route: its describer, and whether it needs the JSON body."""

    describe: Describer
    reads_body: bool = True


def app_of(value: object) -> str:
    """An app name as given, or '' when it is not a valid one (it is then not stored)."""
    return value if isinstance(value, str) and APP_NAME.fullmatch(value) else ""


def names(value: object, limit: int = 10) -> str:
    """A list of names, space-separated, the first ``limit`` of them."""
    items = [str(v) for v in value] if isinstance(value, list | tuple) else []
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return " ".join(items[:limit]) + more


def _plain(verb: str, summary: Callable[[Params, Params, Body], str] | None = None,
           *, reads_body: bool = True) -> Audited:
    """A change of the route's ``{app}`` (if any) named ``verb``."""
    def describe(match: Params, query: Params, body: Body) -> Described:
        return Described(verb, app_of(match.get("app")),
                         summary(match, query, body) if summary else "")
    return Audited(describe, reads_body)


def _config(match: Params, query: Params, body: Body) -> Described:
    set_ = body.get("set")
    keys = sorted(str(k) for k in set_) if isinstance(set_, dict) else []
    unset = body.get("unset")
    parts = [*([f"set {names(keys)}"] if keys else []),
             *([f"unset {names(unset)}"] if unset else [])]
    if body.get("restart") is False:
        parts.append("(no restart)")
    return Described("config:set" if keys or not unset else "config:unset",
                     app_of(match.get("app")), " ".join(parts))


def _domains(match: Params, query: Params, body: Body) -> Described:
    add, remove = body.get("add"), body.get("remove")
    verb = "domains:add" if add or not remove else "domains:remove"
    parts = [*([f"add {names(add)}"] if add else []),
             *([f"remove {names(remove)}"] if remove else [])]
    return Described(verb, app_of(match.get("app")), " ".join(parts))


def _scale(match: Params, query: Params, body: Body) -> str:
    formation = body.get("formation")
    if not isinstance(formation, dict):
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(formation.items(), key=lambda kv: str(kv[0])))


def _checks(match: Params, query: Params, body: Body) -> Described:
    verb = ("checks:disable" if body.get("disable") else
            "checks:enable" if body.get("enable") else "checks:set")
    parts = [f"{what} {names(body.get(what))}" for what in ("disable", "enable")
             if body.get(what)]
    if isinstance(body.get("set"), dict):
        parts.append("set " + names(sorted(str(k) for k in body["set"])))
    return Described(verb, app_of(match.get("app")), " ".join(parts))


def _run(match: Params, query: Params, body: Body) -> str:
    command = body.get("command")
    if not isinstance(command, list) or not command:
        return ""
    # The arguments may hold a secret (as in `sshpolicy.redact`): the program name only.
    more = f" (+{len(command) - 1} arguments)" if len(command) > 1 else ""
    return f"{str(command[0])[:60]}{more}"


def _unit_names(body: Body) -> list[str]:
    units = body.get("units")
    if not isinstance(units, list):
        return []
    return [str(u.get("name", "")) if isinstance(u, dict) else str(u) for u in units]


_FLEET_VERBS = {"launched": ("start",), "loaded": ("load", "stop"), "inactive": ("unload",)}


def _fleet_desired(match: Params, query: Params, body: Body) -> Described:
    state = str(body.get("state", ""))
    verbs = _FLEET_VERBS.get(state, ())
    # load and stop both want "loaded": the CLI says which one its user typed.
    said = str(body.get("command", ""))
    verb = said if said in verbs else (verbs[0] if verbs else "desired")
    return Described(f"fleet {verb}", "", names(_unit_names(body)))


def _fleet(verb: str) -> Audited:
    return Audited(lambda m, q, b: Described(f"fleet {verb}", "", names(_unit_names(b))))


def _field(name: str, prefix: str = "") -> Callable[[Params, Params, Body], str]:
    return lambda m, q, b: f"{prefix}{b.get(name)}" if isinstance(b.get(name), str) else ""


def _create(match: Params, query: Params, body: Body) -> Described:
    return Described("apps:create", app_of(body.get("name")))


def _auto_renew(match: Params, query: Params, body: Body) -> Described:
    return Described("letsencrypt:auto-renew", app_of(body.get("app")))


def _resources(match: Params, query: Params, body: Body) -> Described:
    kind = str(body.get("kind", ""))
    kind = kind if kind in ("limit", "reserve") else "limit"
    clear = body.get("clear") is True
    values = body.get("set")
    pairs = " ".join(f"{k}={v}" for k, v in sorted(values.items(), key=lambda kv: str(kv[0]))
                     ) if isinstance(values, dict) else ""
    proc = body.get("process_type")
    summary = " ".join(p for p in (f"{proc}" if isinstance(proc, str) and proc else "", pairs)
                       if p)
    return Described(f"resource:{kind}{'-clear' if clear else ''}", app_of(match.get("app")),
                     summary)


def _ports(match: Params, query: Params, body: Body) -> Described:
    verb = next((v for v in ("clear", "set", "add", "remove") if body.get(v)), "set")
    return Described(f"ports:{verb}", app_of(match.get("app")),
                     "" if verb == "clear" else names(body.get(verb)))


def _to_new_app(verb: str) -> Audited:
    """rename / clone: the app, and the new name in the summary."""
    return _plain(verb, lambda m, q, b: f"to {app_of(b.get('name')) or '?'}"
                  + (" (skip deploy)" if b.get("skip_deploy") is True else ""))


def _service(verb: str, summary: Callable[[Params, Params, Body], str] | None = None,
             *, reads_body: bool = True) -> Audited:
    """A change of a service (``postgres:create``...): the service's name in the summary,
    the app it is linked to (if any) as the app."""
    def describe(match: Params, query: Params, body: Body) -> Described:
        kind = match.get("kind", "service")
        name = match.get("name") or str(body.get("name", ""))
        more = summary(match, query, body) if summary else ""
        return Described(f"{kind[:20]}:{verb}", app_of(body.get("app")),
                         " ".join(p for p in (name[:64], more) if p))
    return Audited(describe, reads_body)


def _key(verb: str) -> Audited:
    return Audited(lambda m, q, b: Described(verb, "", m.get("key", "")[:200]), False)


#: Every API route that changes something, and how its change is told.
AUDITED: Mapping[tuple[str, str], Audited] = {
    ("POST", "/v1/apps"): Audited(_create),
    ("DELETE", "/v1/apps/{app}"): _plain("apps:destroy", reads_body=False),
    ("POST", "/v1/apps/{app}/lock"): _plain("apps:lock", reads_body=False),
    ("POST", "/v1/apps/{app}/unlock"): _plain("apps:unlock", reads_body=False),
    ("PATCH", "/v1/apps/{app}/config"): Audited(_config),
    ("PUT", "/v1/domains/global"): _plain("domains:set-global", _field("domain")),
    ("DELETE", "/v1/domains/global"): _plain("domains:clear-global", reads_body=False),
    ("POST", "/v1/apps/{app}/domains"): Audited(_domains),
    ("POST", "/v1/apps/{app}/scale"): _plain("ps:scale", _scale),
    ("POST", "/v1/apps/{app}/restart"): _plain("ps:restart", reads_body=False),
    ("POST", "/v1/apps/{app}/stop"): _plain("ps:stop", reads_body=False),
    ("POST", "/v1/apps/{app}/start"): _plain("ps:start", reads_body=False),
    ("POST", "/v1/apps/{app}/rollback"): _plain(
        "releases:rollback", lambda m, q, b: f"to v{b.get('version')}"),
    ("POST", "/v1/apps/{app}/checks"): Audited(_checks),
    ("POST", "/v1/apps/{app}/run"): _plain("run", _run),
    ("POST", "/v1/apps/{app}/builds"): _plain(
        "push", lambda m, q, b: f"revision {q.get('rev', '')[:12]}", reads_body=False),
    ("POST", "/v1/ssh-keys"): _plain(
        "ssh-keys:add", lambda m, q, b: _field("name")(m, q, b)
        + (" (admin)" if b.get("admin") is True else "")),
    ("DELETE", "/v1/ssh-keys/{name}"): Audited(
        lambda m, q, b: Described("ssh-keys:remove", "", m.get("name", "")), False),
    ("POST", "/v1/apps/{app}/acl"): _plain("acl:add", _field("name")),
    ("DELETE", "/v1/apps/{app}/acl/{name}"): _plain(
        "acl:remove", lambda m, q, b: m.get("name", "")[:64], reads_body=False),
    ("PUT", "/v1/apps/{app}/certs"): _plain("certs:add", reads_body=False),
    ("DELETE", "/v1/apps/{app}/certs"): _plain("certs:remove", reads_body=False),
    ("POST", "/v1/apps/{app}/certs/generate"): _plain(
        "certs:generate", lambda m, q, b: names(b.get("domains"))),
    ("POST", "/v1/apps/{app}/certs/options"): _plain("certs:set", _field("name")),
    ("POST", "/v1/apps/{app}/letsencrypt"): _plain("letsencrypt:enable", reads_body=False),
    ("DELETE", "/v1/apps/{app}/letsencrypt"): _plain("letsencrypt:disable", reads_body=False),
    ("POST", "/v1/apps/{app}/letsencrypt/revoke"): _plain("letsencrypt:revoke",
                                                          reads_body=False),
    ("POST", "/v1/letsencrypt/auto-renew"): Audited(_auto_renew),
    ("POST", "/v1/letsencrypt/settings"): _plain("letsencrypt:set", _field("name")),
    ("POST", "/v1/fleet/submit"): _fleet("submit"),
    ("POST", "/v1/fleet/desired"): Audited(_fleet_desired),
    ("POST", "/v1/fleet/destroy"): _fleet("destroy"),
    # Dokku's everyday commands
    ("POST", "/v1/apps/{app}/resources"): Audited(_resources),
    ("POST", "/v1/apps/{app}/rebuild"): _plain("ps:rebuild", reads_body=False),
    ("POST", "/v1/apps/{app}/rename"): _to_new_app("apps:rename"),
    ("POST", "/v1/apps/{app}/clone"): _to_new_app("apps:clone"),
    ("POST", "/v1/apps/{app}/from-image"): _plain("git:from-image", _field("image")),
    ("POST", "/v1/apps/{app}/load-image"): _plain(
        "git:load-image", lambda m, q, b: q.get("image", "")[:200], reads_body=False),
    ("POST", "/v1/apps/{app}/ports"): Audited(_ports),
    ("POST", "/v1/storage/directories"): _plain("storage:ensure-directory", _field("name")),
    ("POST", "/v1/apps/{app}/storage"): _plain("storage:mount", _field("mount")),
    ("POST", "/v1/apps/{app}/storage/unmount"): _plain("storage:unmount", _field("mount")),
    # scheduled tasks: the task's id (its command is in app.json, not repeated here)
    ("POST", "/v1/apps/{app}/cron/{id}/run"): _plain(
        "cron:run", lambda m, q, b: m.get("id", "")[:32]
        + (" (detached)" if b.get("detach") is True else "")),
    ("POST", "/v1/apps/{app}/cron/{id}/suspend"): _plain(
        "cron:suspend", lambda m, q, b: m.get("id", "")[:32], reads_body=False),
    ("POST", "/v1/apps/{app}/cron/{id}/resume"): _plain(
        "cron:resume", lambda m, q, b: m.get("id", "")[:32], reads_body=False),
    # services (postgres:*, redis:*): dumps and statements are never read here
    ("POST", "/v1/services/{kind}"): _service("create", _field("version")),
    ("DELETE", "/v1/services/{kind}/{name}"): _service("destroy", reads_body=False),
    ("POST", "/v1/services/{kind}/{name}/restart"): _service("restart", reads_body=False),
    ("POST", "/v1/services/{kind}/{name}/link"): _service("link", _field("alias", "as ")),
    ("POST", "/v1/services/{kind}/{name}/unlink"): _service("unlink"),
    ("POST", "/v1/services/{kind}/{name}/import"): _service("import", reads_body=False),
    ("POST", "/v1/services/{kind}/{name}/connect"): _service("connect", reads_body=False),
    ("POST", "/v1/backup/create"): _plain("backup:create", _field("path")),
    ("POST", "/v1/backup/restore"): _plain("backup:restore", _field("path")),
    ("POST", "/v1/services/{kind}/{name}/backup"): _service("backup", _field("dir")),
    ("PUT", "/v1/services/{kind}/{name}/backup-schedule"): _service(
        "backup-schedule", _field("cron")),
    ("DELETE", "/v1/services/{kind}/{name}/backup-schedule"): _service(
        "backup-unschedule", reads_body=False),
    ("POST", "/v1/services/{kind}/{name}/expose"): _service(
        "expose", lambda m, q, b: f"port {b.get('port')}" if type(b.get("port")) is int else ""),
    ("POST", "/v1/services/{kind}/{name}/unexpose"): _service("unexpose", reads_body=False),
    # dashboard users: the password in the body is never read here (the name only)
    ("POST", "/v1/users"): Audited(lambda m, q, b: Described(
        "users:add", "", f"{b.get('name')}" + (" (admin)" if b.get("admin") is True else "")
        if isinstance(b.get("name"), str) else "")),
    ("DELETE", "/v1/users/{name}"): Audited(
        lambda m, q, b: Described("users:remove", "", m.get("name", "")), False),
    ("PUT", "/v1/kv/{key}"): _key("kv:put"),
    ("DELETE", "/v1/kv/{key}"): _key("kv:delete"),
}

#: Requests that use POST (for a body) but change nothing.
NOT_AUDITED: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/v1/apps/{app}/logs"),
})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def describe(method: str, route: str, match: Params, query: Params, body: Body
             ) -> Described | None:
    """How a request is told in the trail, or None when it is not a change."""
    if method in READ_METHODS or (method, route) in NOT_AUDITED:
        return None
    entry = AUDITED.get((method, route))
    if entry is None:  # a route without an entry is still recorded, under its path
        return Described(f"{method} {route}", app_of(match.get("app")))
    return entry.describe(match, query, body)


def reads_body(method: str, route: str) -> bool:
    """True when the route's describer needs the JSON body."""
    entry = AUDITED.get((method, route))
    return entry is not None and entry.reads_body
