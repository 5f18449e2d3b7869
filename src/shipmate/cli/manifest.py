"""``shipmate plan | apply | import chef | import puppet``: declarative manifests.

plan and apply talk to the Docker engine directly (``SHIPMATE_DOCKER_HOST``); no daemon needed.
``apply --via-daemon`` instead submits the containers as ``.container`` units to the daemon,
pinned to its machine (:mod:`shipmate.converge.via_daemon`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipmate.cli import output
from shipmate.cli.inputs import read_stdin
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ValidationError

if TYPE_CHECKING:  # the manifest stack (YAML, converge) loads only for the commands using it
    from shipmate.converge.plan import Plan

_VERBS = {"build": "build image", "import": "import image", "create": "create",
          "update": "update in place", "replace": "replace", "delete": "delete"}


def render_plan(plan: Plan, *, verbose: bool = False) -> list[tuple[str, str]]:
    """The plan as (kind, text) lines: kind is ``header``, ``step`` or ``detail``."""
    lines: list[tuple[str, str]] = [("header", f"Plan for {plan.manifest} ({plan.path})")]
    for a in plan.actions:
        if a.kind == "noop":
            if verbose:
                lines.append(("detail", f"{a.name}: no change"))
            continue
        how = f" ({a.strategy})" if a.kind == "replace" else ""
        lines.append(("step", f"{_VERBS[a.kind]} {a.name}{how}" + (
            f": {a.reason}" if a.reason else "")))
        for c in a.changes:
            tag = "forces replace" if a.kind == "replace" and c.replace else "in place"
            lines.append(("detail", f"{c.field}: {_show(c.old)} -> {_show(c.new)}  ({tag})"))
    for name in plan.orphans:
        lines.append(("detail", f"{name}: no longer declared, kept (apply --prune removes it)"))
    lines.append(("step", summary(plan)))
    return lines


def summary(plan: Plan) -> str:
    """``Plan: 1 to create, ... 3 unchanged.``"""
    n = plan.counts()
    parts = [f"{n.get(k, 0)} to {v}" for k, v in (
        ("build", "build"), ("import", "import"), ("create", "create"), ("update", "update"),
        ("replace", "replace"), ("delete", "delete")) if n.get(k) or k not in ("build", "import")]
    return "Plan: " + ", ".join(parts) + f", {n.get('noop', 0)} unchanged."


def _show(value: str | None) -> str:
    return "(absent)" if value is None else json.dumps(value)


def _print(lines: Sequence[tuple[str, str]]) -> None:
    for kind, text in lines:
        {"header": output.header, "step": output.step, "detail": output.detail}[kind](text)


def _engine(ctx: Context) -> Any:
    from shipmate.engine.docker import DockerEngine

    return DockerEngine(ctx.config.docker_host)


@command("plan", "show what `apply` would change for a manifest (and save it with -o)",
         arg("file", metavar="FILE", help="manifest (YAML)"),
         arg("-o", "--out", metavar="PLAN.json", help="save the plan for `apply PLAN.json`"),
         arg("--prune", action="store_true", help="plan removing undeclared containers too"),
         arg("-v", "--verbose", action="store_true", help="list unchanged containers too"))
async def plan_cmd(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.converge.apply import plan_manifest
    from shipmate.spec.manifest import load_manifest

    manifest = load_manifest(args.file)
    engine = _engine(ctx)
    try:
        plan = await plan_manifest(engine, manifest, prune=args.prune)
    finally:
        await engine.close()
    if args.out:
        _save(args.out, plan)
    if ctx.format == "json":
        output.as_json(plan.to_json())
    else:
        _print(render_plan(plan, verbose=args.verbose))
        if args.out:
            output.detail(f"saved to {args.out}; apply it with: shipmate apply {args.out}")
    return 0


@command("apply", "converge this Docker host to a manifest or a saved plan",
         arg("file", metavar="FILE|PLAN.json", help="manifest (YAML) or a saved plan"),
         arg("--prune", action="store_true", help="remove this manifest's undeclared containers"),
         arg("--via-daemon", action="store_true",
             help="submit the containers as units placed on this machine (needs the daemon)"),
         arg("--timeout", type=float, default=120.0, metavar="SECONDS",
             help="with --via-daemon: how long to wait for the units to be active"),
         arg("-y", "--yes", action="store_true", help="do not ask for confirmation"))
async def apply_cmd(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.converge.apply import apply_manifest, plan_manifest
    from shipmate.spec.manifest import load_manifest

    saved = _saved_plan(args.file)
    if args.via_daemon:
        if saved is not None:
            raise ValidationError("a saved plan is for converging this Docker host directly",
                                  hint="apply the manifest itself with --via-daemon")
        return await _apply_via_daemon(ctx, args)
    manifest = load_manifest(saved.path if saved else args.file)
    engine = _engine(ctx)
    try:
        if saved is None and not args.yes:
            preview = await plan_manifest(engine, manifest, prune=args.prune)
            if preview.changes_anything and not _confirm(render_plan(preview)):
                output.step("Nothing applied")
                return 1
        result = await apply_manifest(engine, manifest, prune=args.prune, saved=saved,
                                      report=output.step)
    finally:
        await engine.close()
    if ctx.format == "json":
        output.as_json({"ok": result.ok, "plan": result.plan.to_json(), "outcomes": [
            {"name": o.action.name, "kind": o.action.kind, "ok": o.ok, "message": o.message,
             "container_id": o.container_id} for o in result.outcomes]})
        return 0 if result.ok else 1
    for outcome in result.failures:
        output.error(outcome.message)
    if not result.outcomes:
        output.step(f"{manifest.name}: no changes ({summary(result.plan)[6:]})")
    else:
        done = sum(1 for o in result.outcomes if o.ok)
        output.step(f"{manifest.name}: {done} done, {len(result.failures)} failed")
    return 0 if result.ok else 1


async def _apply_via_daemon(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.converge.via_daemon import apply_via_daemon, daemon_machine_id, plan_via_daemon
    from shipmate.spec.manifest import load_manifest

    manifest = load_manifest(args.file)
    client = ctx.client()
    machine = await daemon_machine_id(client)  # the daemon's own ID (also with --cluster)
    if not args.yes:
        preview = await plan_via_daemon(client, manifest, machine, prune=args.prune)
        if preview.changes_anything and not _confirm(
                [("header", f"Units for {manifest.name} on machine {machine}")]
                + [("step", line) for line in preview.lines()]):
            output.step("Nothing applied")
            return 1
    report = output.step if ctx.format != "json" else (lambda _m: None)
    result = await apply_via_daemon(client, manifest, machine, prune=args.prune,
                                    report=report, timeout=args.timeout)
    if ctx.format == "json":
        output.as_json(result.to_json())
        return 0 if result.ok else 1
    for failure in result.failures:
        output.error(failure)
    if result.ok:
        how = "" if result.changed else "no changes; "
        output.step(f"{manifest.name}: {how}{len(result.units)} unit(s) active on {machine}")
    return 0 if result.ok else 1


def _save(path: str, plan: Plan) -> None:
    """Write a saved plan (no env values in it: changes carry display values only)."""
    Path(path).write_text(json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n")


def _saved_plan(path: str) -> Plan | None:
    """The saved plan at ``path``, or None when it is a manifest (YAML, or JSON as YAML)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # YAML flow style: let the manifest parser say what is wrong
    if not isinstance(data, dict) or "fingerprint" not in data:
        return None
    from shipmate.converge.plan import Plan

    return Plan.from_json(data)


def _confirm(lines: Sequence[tuple[str, str]]) -> bool:
    _print(lines)
    if not sys.stdin.isatty():
        raise ValidationError("apply would change this host and nobody confirmed it",
                              hint="review with `shipmate plan FILE`, then pass --yes")
    answer = input("       Apply these changes? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _import(ctx: Context, kind: str, args: argparse.Namespace) -> int:
    from shipmate.importers import translate_file, translate_text

    if ctx.remote or args.file == "-":  # over SSH: text in, manifest out, no server files
        if ctx.remote and (args.out or args.file != "-"):
            raise ValidationError("over SSH, import reads standard input and prints the manifest",
                                  hint=f"run `import {kind} < FILE > manifest.yaml`")
        source = read_stdin("the input")
        result = translate_text(kind, source, "<stdin>", args.name or "imported")
    else:
        result = translate_file(kind, args.file, args.name)
    text = result.render()
    if args.out:
        Path(args.out).write_text(text)
        output.step(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    for note in result.untranslated:
        output.error(f"not translated: {note}")
    return 0


_IMPORT_ARGS = (arg("-o", "--out", metavar="FILE.yaml", help="write the manifest here"),
                arg("--name", help="manifest name (default: the input file's stem)"))


@command("import chef", "translate a Chef recipe's docker_image/docker_container to a manifest",
         arg("file", metavar="RECIPE.rb", nargs="?", default="-",
             help="the recipe (default: standard input)"), *_IMPORT_ARGS)
async def import_chef(ctx: Context, args: argparse.Namespace) -> int:
    return _import(ctx, "chef", args)


@command("import puppet", "translate a Puppet manifest's docker::image/docker::run to a manifest",
         arg("file", metavar="MANIFEST.pp", nargs="?", default="-",
             help="the manifest (default: standard input)"), *_IMPORT_ARGS)
async def import_puppet(ctx: Context, args: argparse.Namespace) -> int:
    return _import(ctx, "puppet", args)
