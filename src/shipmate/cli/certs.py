"""Dokku's ``certs:*`` and dokku-letsencrypt's ``letsencrypt:*`` commands."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of, as_text, flag_args, single_value, stream_out
from shipmate.cli.inputs import MAX_INPUT
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ValidationError

_REPORT = [("--ssl-enabled", "Ssl enabled", "enabled"),
           ("--ssl-hostnames", "Ssl hostnames", "hostnames"),
           ("--ssl-expires-at", "Ssl expires at", "expires_at"),
           ("--ssl-issuer", "Ssl issuer", "issuer"),
           ("--ssl-starts-at", "Ssl starts at", "starts_at"),
           ("--ssl-subject", "Ssl subject", "subject"),
           ("--ssl-verified", "Ssl verified", "verified"),
           ("--ssl-source", "Ssl source", "source"),
           ("--ssl-hsts", "Ssl hsts", "hsts"),
           ("--ssl-fingerprint", "Ssl fingerprint", "fingerprint")]


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT + 1)
    except OSError as exc:
        raise ValidationError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_INPUT:
        raise ValidationError(f"{path} is larger than {MAX_INPUT // 2**20} MiB")
    return data


def _stdin_tar() -> dict[str, Any]:
    if sys.stdin is None or sys.stdin.isatty():
        raise ValidationError("no certificate given",
                              hint="certs:add APP server.crt server.key, or "
                                   "certs:add APP < cert-key.tar")
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise ValidationError(f"standard input is larger than {MAX_INPUT // 2**20} MiB")
    return {"tar": base64.b64encode(data).decode("ascii")}


@command("certs:add", "add a certificate and key to an app, or to `shipmate` (the dashboard) "
         "(files, or a tar on stdin)", APP,
         arg("crt", nargs="?", help="PEM certificate (with its chain)"),
         arg("key", nargs="?", help="PEM private key"))
async def certs_add(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    if ctx.remote or args.crt in (None, "-"):
        if args.crt not in (None, "-") or args.key:
            raise ValidationError("over SSH, certs:add reads a tar from standard input",
                                  hint=f"certs:add {app} < cert-key.tar")
        body = _stdin_tar()
    elif args.key is None:
        raise ValidationError("give the certificate and the key",
                              hint=f"certs:add {app} server.crt server.key")
    else:
        body = {"crt": _read_bytes(args.crt, "the certificate").decode("ascii", "replace"),
                "key": _read_bytes(args.key, "the key").decode("ascii", "replace")}
    report = await ctx.client().request("PUT", f"/v1/apps/{app}/certs", json_body=body)
    output.step(f"Added a certificate for {', '.join(report['hostnames'])} to {app}")
    return 0


@command("certs:generate", "make a self-signed certificate for an app (for testing)", APP,
         arg("domains", nargs="*", help="names (default: every name the app answers on)"))
async def certs_generate(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    report = await ctx.client().request("POST", f"/v1/apps/{app}/certs/generate",
                                        json_body={"domains": args.domains})
    output.step(f"Generated a self-signed certificate for {', '.join(report['hostnames'])}")
    output.detail("browsers will warn about it; use letsencrypt:enable for a trusted one")
    return 0


@command("certs:report", "show an app's certificate", APP, FMT,
         *flag_args([flag for flag, _, _ in _REPORT]))
async def certs_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/certs")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    items = [(flag, label, " ".join(v) if isinstance(v := data.get(key, ""), list) else v)
             for flag, label, key in _REPORT]
    if not single_value(args.flag, items):
        output.report(f"{args.app} ssl information", [(lb, as_text(v)) for _, lb, v in items])
    return 0


@command("certs:show", "print an app's certificate or private key (PEM)", APP,
         arg("part", choices=("crt", "key")))
async def certs_show(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/certs/{args.part}")
    sys.stdout.write(data["pem"])
    return 0


@command("certs:remove", "remove an app's certificate (back to plain HTTP)", APP)
async def certs_remove(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("DELETE", f"/v1/apps/{app_of(args)}/certs")
    output.step(f"Removed the certificate of {args.app}")
    return 0


@command("certs:set", "set an HTTPS property of an app: hsts true|false", APP,
         arg("name", choices=("hsts",)), arg("value", choices=("true", "false")))
async def certs_set(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/certs/options",
                               json_body={"name": args.name, "value": args.value})
    output.step(f"Set {args.name} to {args.value} for {args.app}")
    return 0


# letsencrypt --------------------------------------------------------------------------------

@command("letsencrypt:enable", "get a certificate from the ACME server (Let's Encrypt) now, "
         "and renew it automatically (APP `shipmate`: the dashboard)", APP)
async def le_enable(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/letsencrypt")


@command("letsencrypt:disable", "stop renewing an app's certificate and remove it", APP)
async def le_disable(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("DELETE", f"/v1/apps/{app_of(args)}/letsencrypt")
    output.step(f"Disabled letsencrypt for {args.app}")
    return 0


@command("letsencrypt:revoke", "revoke an app's certificate at the ACME server", APP)
async def le_revoke(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/letsencrypt/revoke")


@command("letsencrypt:auto-renew", "renew the certificates that are due (or one app's) now",
         arg("app", nargs="?", default="", help="app name (default: every app)"))
async def le_auto_renew(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args) if args.app else ""
    return await stream_out(ctx, "POST", "/v1/letsencrypt/auto-renew", {"app": app})


@command("letsencrypt:list", "list apps with letsencrypt, their expiry and next renewal", FMT)
async def le_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = await ctx.client().request("GET", "/v1/letsencrypt")
    if ctx.format == "json":
        output.as_json(rows)
        return 0
    output.table(rows, ["app", "expires", "renewal", "last_error"])
    return 0


@command("letsencrypt:set", "set a global letsencrypt property: email, server, eab-kid, "
         "eab-hmac-key (no value: unset)", arg("--global", dest="is_global", action="store_true",
                                                help="the only scope (every app)"),
         arg("name", choices=("email", "server", "eab-kid", "eab-hmac-key")),
         arg("value", nargs="?", default=""))
async def le_set(ctx: Context, args: argparse.Namespace) -> int:
    if not args.is_global:
        raise ValidationError("letsencrypt properties are global here",
                              hint=f"letsencrypt:set --global {args.name} VALUE")
    await ctx.client().request("POST", "/v1/letsencrypt/settings",
                               json_body={"name": args.name, "value": args.value})
    shown = args.value if args.name != "eab-hmac-key" or not args.value else "<set>"
    output.step(f"Set {args.name} to {shown}" if args.value else f"Unset {args.name}")
    return 0


@command("letsencrypt:cron-job", "automatic renewal (on by default): --add turns it on, "
         "--remove off", arg("--add", action="store_true"), arg("--remove", action="store_true"))
async def le_cron(ctx: Context, args: argparse.Namespace) -> int:
    if args.add == args.remove:
        raise ValidationError("give --add or --remove")
    await ctx.client().request("POST", "/v1/letsencrypt/settings",
                               json_body={"name": "auto-renew",
                                          "value": "true" if args.add else "false"})
    output.step("Automatic renewal " + ("on" if args.add else "off"))
    return 0
