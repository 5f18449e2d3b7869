"""Dokku-compatible PaaS commands: apps, config, domains, ps, releases, checks, logs, run."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of, as_text, flag_args, single_value, stream_out
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ValidationError
from shipmate.paas.model import parse_assignments, parse_release_label, parse_scale

# apps ---------------------------------------------------------------------------------------

@command("apps:create", "create an app", APP)
async def apps_create(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", "/v1/apps", json_body={"name": app_of(args)})
    output.step(f"Creating {args.app}...")
    return 0


@command("apps:list", "list apps", FMT)
async def apps_list(ctx: Context, args: argparse.Namespace) -> int:
    apps = await ctx.client().request("GET", "/v1/apps")
    if ctx.granted is not None:  # a non-admin SSH key sees the apps granted to it
        apps = [a for a in apps if a["name"] in ctx.granted]
    if ctx.format == "json":
        output.as_json(apps)
        return 0
    output.header("My Apps")
    for app in apps:
        print(app["name"])
    return 0


@command("apps:exists", "exit 0 if the app exists, 1 if not", APP)
async def apps_exists(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/exists")
    if data["exists"]:
        output.step("App exists")
        return 0
    output.error(f"App {args.app} does not exist")
    return 1


@command("apps:destroy", "destroy an app, its containers, releases and settings", APP,
         arg("--force", action="store_true", help="do not ask for confirmation"))
async def apps_destroy(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    if not args.force:
        if not sys.stdin.isatty():
            raise ValidationError(f"Refusing to destroy {app} without confirmation",
                                  hint=f"run `apps:destroy {app} --force`")
        output.error("WARNING: Potentially Destructive Action")
        output.error(f"This command will destroy app {app}.")
        if input(f" !     To proceed, type \"{app}\"\n\n> ").strip() != app:
            output.error("Confirmation did not match. Aborted.")
            return 1
    output.step(f"Destroying {app} (including all add-ons)")
    return await stream_out(ctx, "DELETE", f"/v1/apps/{app}")


@command("apps:lock", "refuse deploys of an app", APP)
async def apps_lock(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/lock")
    output.step("Deploy lock created")
    return 0


@command("apps:unlock", "allow deploys of an app again", APP)
async def apps_unlock(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/unlock")
    output.step("Deploy lock removed")
    return 0


_REPORT_FLAGS = [("--app-deploy-source", "App deploy source", "deploy_source"),
                 ("--app-locked", "App locked", "locked"),
                 ("--app-created-at", "App created at", "created"),
                 ("--app-current-release", "App current release", "release"),
                 ("--app-dir", "App dir", "repo")]


@command("apps:report", "show an app's information", APP, FMT,
         *flag_args([flag for flag, _, _ in _REPORT_FLAGS]))
async def apps_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    if isinstance(data.get("created"), int | float):
        data["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(data["created"]))
    items = [(flag, label, data.get(key, "")) for flag, label, key in _REPORT_FLAGS]
    if not single_value(args.flag, items):
        output.report(f"{args.app} app information",
                      [(label, as_text(v)) for _, label, v in items])
    return 0


# config -------------------------------------------------------------------------------------

def decode_base64(key: str, value: str) -> str:
    """A ``config:set --encoded`` value; the error names the key, never the value."""
    import base64
    import binascii

    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValidationError(f"{key}: the value is not valid base64 of UTF-8 text",
                              hint="encode it with `base64 -w0`") from None


@command("config:set", "set config vars (restarts the app unless --no-restart)", APP,
         arg("pairs", nargs="+", metavar="KEY=VALUE"),
         arg("--no-restart", action="store_true", help="do not deploy the change now"),
         arg("--encoded", action="store_true", help="values are base64-encoded"))
async def config_set(ctx: Context, args: argparse.Namespace) -> int:
    values = parse_assignments(args.pairs)
    if args.encoded:
        values = {k: decode_base64(k, v) for k, v in values.items()}
    # Keys only: values stay out of terminals, CI logs and SSH session recordings
    # (`config:get APP KEY` prints one when asked).
    output.step("Setting config vars")
    for key in values:
        output.detail(key)
    return await stream_out(ctx, "PATCH", f"/v1/apps/{app_of(args)}/config",
                         {"set": values, "restart": not args.no_restart})


@command("config:unset", "unset config vars", APP, arg("keys", nargs="+", metavar="KEY"),
         arg("--no-restart", action="store_true", help="do not deploy the change now"))
async def config_unset(ctx: Context, args: argparse.Namespace) -> int:
    output.step("Unsetting config vars")
    for key in args.keys:
        output.detail(key)
    return await stream_out(ctx, "PATCH", f"/v1/apps/{app_of(args)}/config",
                         {"unset": args.keys, "restart": not args.no_restart})


async def _config(ctx: Context, app: str) -> dict[str, str]:
    result: dict[str, str] = await ctx.client().request("GET", f"/v1/apps/{app}/config")
    return result


@command("config:get", "print one config value exactly", APP, arg("key"))
async def config_get(ctx: Context, args: argparse.Namespace) -> int:
    cfg = await _config(ctx, app_of(args))
    if args.key not in cfg:
        return 1
    sys.stdout.write(cfg[args.key] + "\n")
    return 0


@command("config:show", "show an app's config vars", APP, FMT)
async def config_show(ctx: Context, args: argparse.Namespace) -> int:
    cfg = await _config(ctx, app_of(args))
    if ctx.format == "json":
        output.as_json(cfg)
        return 0
    output.report(f"{args.app} env vars", sorted(cfg.items()))
    return 0


@command("config:keys", "list an app's config keys", APP)
async def config_keys(ctx: Context, args: argparse.Namespace) -> int:
    for key in sorted(await _config(ctx, app_of(args))):
        print(key)
    return 0


@command("config:export", "print config vars as shell exports (or envfile, json)", APP,
         arg("--format", dest="export_format", choices=("exports", "envfile", "json", "shell"),
             default="exports"))
async def config_export(ctx: Context, args: argparse.Namespace) -> int:
    cfg = await _config(ctx, app_of(args))
    fmt = args.export_format
    if fmt == "json":
        output.as_json(cfg)
    for key, value in sorted(cfg.items()):
        if fmt == "exports":
            print(f"export {key}={shlex.quote(value)}")
        elif fmt in ("envfile", "shell"):
            print(f"{key}={shlex.quote(value)}")
    return 0


# domains ------------------------------------------------------------------------------------

@command("domains:set-global", "set the global domain apps get as APP.DOMAIN",
         arg("domain"))
async def domains_set_global(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("PUT", "/v1/domains/global", json_body={"domain": args.domain})
    output.step(f"Set global domain to {args.domain}")
    return 0


@command("domains:clear-global", "remove the global domain")
async def domains_clear_global(ctx: Context, args: argparse.Namespace) -> int:
    result = await ctx.client().request("DELETE", "/v1/domains/global")
    output.step("Cleared global domain")
    if result.get("domain"):
        output.step(f"Apps answer as APP.{result['domain']} again (the global_domain setting)")
    for app, port in sorted(dict(result.get("ports") or {}).items()):
        output.step(f"{app} now answers on port {port}")
    return 0


@command("domains:add", "add custom domains to an app", APP, arg("domains", nargs="+"))
async def domains_add(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/domains",
                               json_body={"add": args.domains})
    output.step(f"Added {' '.join(args.domains)} to {args.app}")
    return 0


@command("domains:remove", "remove custom domains from an app", APP, arg("domains", nargs="+"))
async def domains_remove(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/domains",
                               json_body={"remove": args.domains})
    output.step(f"Removed {' '.join(args.domains)} from {args.app}")
    return 0


_DOMAIN_FLAGS = ["--domains-app-vhosts", "--domains-global-vhosts", "--domains-app-port",
                 "--domains-routing"]


@command("domains:report", "show an app's domains", APP, FMT, *flag_args(_DOMAIN_FLAGS))
async def domains_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/domains")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    items = [("--domains-app-vhosts", "Domains app vhosts", " ".join(data["vhosts"])),
             ("--domains-global-vhosts", "Domains global vhosts", data["global"]),
             ("--domains-app-port", "Domains app port", data.get("port") or ""),
             ("--domains-routing", "Domains routing", data.get("routing", ""))]
    if not single_value(args.flag, items):
        output.report(f"{args.app} domains information", [(lb, v) for _, lb, v in items])
    return 0


@command("urls", "print an app's URLs", APP)
async def urls(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/domains")
    for url in data["urls"]:
        print(url)
    return 0


@command("url", "print an app's first URL", APP)
async def url(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/domains")
    print(data["urls"][0] if data["urls"] else "")
    return 0


# ps, releases, checks, logs, run -----------------------------------------------------------

@command("ps:scale", "set how many instances of each process type run", APP,
         arg("pairs", nargs="*", metavar="TYPE=COUNT"))
async def ps_scale(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    if not args.pairs:
        formation = await ctx.client().request("GET", f"/v1/apps/{app}/formation")
        output.step("Scaling for " + app)
        output.table([{"proctype": k, "qty": v} for k, v in sorted(formation.items())],
                     ["proctype", "qty"])
        return 0
    output.step(f"Scaling {app} processes: {' '.join(args.pairs)}")
    return await stream_out(ctx, "POST", f"/v1/apps/{app}/scale",
                         {"formation": parse_scale(args.pairs)})


@command("ps:report", "show an app's processes", APP, FMT)
async def ps_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/ps")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    output.report(f"{args.app} ps information", [
        ("Deployed", "true" if data["release"] else "false"),
        ("Release", data["release"] or "-"),
        ("Routing", data.get("routing", "")),
        *[(f"Status {p['instance']}", f"waiting: {p['reason']}" if p.get("reason")
           else f"{p['state']} ({p['machine']} {p['endpoint']})")
          for p in data["processes"]]])
    return 0


@command("ps:restart", "restart an app (a fresh deploy of its current release)", APP)
async def ps_restart(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/restart")


@command("ps:stop", "stop an app's instances (cancels a running deploy)", APP)
async def ps_stop(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/stop")


@command("ps:start", "start the instances ps:stop stopped", APP)
async def ps_start(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/start")


@command("releases", "list an app's releases", APP, FMT)
async def releases(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/releases")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    output.header(f"{args.app} Releases")
    output.table([{"version": f"v{r['version']}" + (" (current)" if r["current"] else ""),
                   "created": r["created_at"], "rev": r["git_rev"][:7],
                   "description": r["description"]} for r in reversed(data)],
                 ["version", "created", "rev", "description"])
    return 0


@command("releases:rollback", "deploy an earlier release's image and config again", APP,
         arg("release", help="vN"))
async def releases_rollback(ctx: Context, args: argparse.Namespace) -> int:
    version = parse_release_label(args.release)
    output.step(f"Rolling back {args.app} to v{version}")
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/rollback", {"version": version})


@command("checks:report", "show an app's health-check settings", APP, FMT)
async def checks_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/checks")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    output.report(f"{args.app} checks information", [
        ("Checks disabled list", " ".join(data.get("disabled", [])) or "none"),
        ("Checks wait", data.get("wait", "")), ("Checks timeout", data.get("timeout", "")),
        ("Checks attempts", data.get("attempts", ""))])
    return 0


async def _toggle_checks(ctx: Context, args: argparse.Namespace, verb: str,
                         doing: str) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/checks",
                               json_body={verb: args.types.split(",")})
    output.step(f"{doing} zero downtime for app ({args.types})")
    return 0


@command("checks:disable", "skip health checks of process types (all by default)", APP,
         arg("types", nargs="?", default="_all_"))
async def checks_disable(ctx: Context, args: argparse.Namespace) -> int:
    return await _toggle_checks(ctx, args, "disable", "Disabling")


@command("checks:enable", "run health checks of process types again (all by default)", APP,
         arg("types", nargs="?", default="_all_"))
async def checks_enable(ctx: Context, args: argparse.Namespace) -> int:
    return await _toggle_checks(ctx, args, "enable", "Enabling")


@command("checks:set", "set a health-check property (wait, timeout, attempts)", APP,
         arg("key", choices=("wait", "timeout", "attempts")), arg("value", nargs="?"))
async def checks_set(ctx: Context, args: argparse.Namespace) -> int:
    value: float | None = None
    if args.value not in (None, ""):
        try:
            value = float(args.value)
        except ValueError:
            raise ValidationError(f"{args.key} must be a number, got {args.value!r}") from None
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/checks",
                               json_body={"set": {args.key: value}})
    output.step(f"Setting {args.key} to {args.value}")
    return 0


@command("logs", "show an app's logs", APP,
         arg("-n", "--num", type=int, default=100, help="number of lines"),
         arg("-t", "--tail", "-f", "--follow", dest="tail", action="store_true",
             help="follow new output (tail -f)"),
         arg("-p", "--ps", default="", help="only this process type"))
async def logs(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/logs",
                         {"num": args.num, "follow": args.tail, "process": args.ps})


@command("run", "run a one-off command in a new container of the current release", APP,
         arg("cmd", nargs=argparse.REMAINDER, help="command and its arguments"))
async def run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.cmd:
        raise ValidationError("No command given", hint=f"e.g. shipmate run {args.app} ls -la")
    code = 0
    async for line in ctx.client().stream("POST", f"/v1/apps/{app_of(args)}/run",
                                          json_body={"command": args.cmd}):
        if line.startswith("\0exit "):
            code = int(line.split()[1])
        else:
            print(line, flush=True)
    return code
