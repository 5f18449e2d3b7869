"""``shipmate fleet VERB``: fleetctl's verbs, columns, flags and exit codes over Shipmate.

``list-machines`` (MACHINE IP METADATA), ``list-units`` (UNIT MACHINE ACTIVE SUB),
``list-unit-files`` (UNIT HASH DSTATE STATE TARGET), ``submit``, ``load``, ``start``,
``stop``, ``unload``, ``destroy``, ``status``, ``journal [-f] [--lines N]``, ``cat``.
Machine IDs show as the first 8 characters + ``...`` and hashes as 7 characters unless
``--full``; ``--no-legend`` drops the header; ``--fields`` picks columns. ``start``, ``load``,
``stop`` and ``unload`` wait for the agents (``--block-attempts N``, 0 = no limit;
``--no-block``). Unit arguments are names or local unit files (submitted on the way, as
fleetctl does); a name without a type gets ``.service``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipmate.cli import output
from shipmate.cli.inputs import read_file, read_stdin
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ShipmateError, ValidationError
from shipmate.scheduler.cluster import human_memory

BLOCK_SLEEP = 0.5
DEFAULT_BLOCK_ATTEMPTS = 60  # 30 s; fleetctl's default 0 waits forever, a bound is kinder
UNIT_TYPES = (".service", ".container")

# --- pure rendering --------------------------------------------------------------------------


def machine_legend(machine_id: str, public_ip: str, full: bool) -> str:
    """fleetctl's ``machineFullLegend``: ``ID.../IP`` (the whole ID with ``--full``)."""
    legend = machine_id if full else f"{machine_id[:8]}..."
    return f"{legend}/{public_ip}" if public_ip else legend


def format_metadata(metadata: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key, ``-`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(metadata.items())) or "-"


Field = Callable[[Mapping[str, Any], bool], str]
MACHINE_FIELDS: dict[str, Field] = {
    "machine": lambda m, full: m["id"] if full else f"{m['id'][:8]}...",
    "ip": lambda m, full: m.get("public_ip") or "-",
    "metadata": lambda m, full: format_metadata(m.get("metadata") or {}),
    "cpus": lambda m, full: f"{(m.get('resources') or {}).get('cpus') or 0:g}" or "-",
    "memory": lambda m, full: human_memory(int((m.get("resources") or {}).get("memory") or 0)),
}
UNIT_FIELDS: dict[str, Field] = {
    "unit": lambda u, full: u["unit"],
    "machine": lambda u, full: machine_legend(u["machine"], u.get("public_ip", ""), full)
    if u.get("machine") else "-",
    "active": lambda u, full: u.get("active") or "-",
    "sub": lambda u, full: u.get("sub") or "-",
    "load": lambda u, full: u.get("load") or "-",
    "hash": lambda u, full: (u["hash"] if full else u["hash"][:7]) if u.get("hash") else "-",
    "reason": lambda u, full: u.get("reason") or "-",
}
#: list-units' columns; REASON joins them when a unit waits (a Shipmate addition: fleetctl
#: lists only units that run somewhere).
UNIT_COLUMNS = "unit,machine,active,sub"


def _target(u: Mapping[str, Any], full: bool) -> str:
    if u.get("global"):
        return "global"
    machines = u.get("machines") or []
    if not machines:
        return "-"
    return ",".join(machine_legend(m["id"], m.get("public_ip", ""), full) for m in machines)


UNIT_FILE_FIELDS: dict[str, Field] = {
    "unit": lambda u, full: u["unit"],
    "hash": lambda u, full: u["hash"] if full else u["hash"][:7],
    "dstate": lambda u, full: u.get("dstate") or "-",
    "state": lambda u, full: "-" if u.get("global") else (u.get("state") or "-"),
    "target": _target,
    "tmachine": _target,
    "global": lambda u, full: "true" if u.get("global") else "false",
    "desc": lambda u, full: u.get("desc") or "-",
}


def render_rows(rows: Sequence[Mapping[str, Any]], fields: Mapping[str, Field], spec: str,
                *, full: bool, legend: bool) -> list[str]:
    """fleetctl's table: the chosen columns, tab-separated, upper-case legend first.
    Raises ValidationError for an unknown field, with fleetctl's words."""
    if not spec:
        raise ValidationError("Must define output format")
    cols = spec.split(",")
    for col in cols:
        if col not in fields:
            raise ValidationError(f"Invalid key in output format: {col!r}",
                                  hint="valid fields: " + ",".join(sorted(fields)))
    lines = ["\t".join(c.upper() for c in cols)] if legend else []
    lines += ["\t".join(fields[c](r, full) for c in cols) for r in rows]
    return lines


def align(lines: Sequence[str]) -> list[str]:
    """Pad tab-separated columns like Go's tabwriter (as fleetctl prints them)."""
    cells = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    return ["\t".join(c.ljust(widths[i]) if i < len(row) - 1 else c
                      for i, c in enumerate(row)).rstrip() for row in cells]


def mangle(name: str) -> str:
    """fleetctl's ``unitNameMangle``: a path's base name; ``.service`` added if untyped."""
    base = os.path.basename(name)
    return base if base.endswith(UNIT_TYPES) else base + ".service"


def reached(row: Mapping[str, Any] | None, target: str) -> bool:
    """True when a unit's current state is ``target`` (global units: its desired state)."""
    if row is None:
        return target == "inactive"
    if row.get("global"):
        return bool(row.get("dstate") == target)
    return bool(row.get("state") == target)


# --- talking to the daemon ------------------------------------------------------------------


def _fmt_args() -> tuple[tuple[tuple[str, ...], dict[str, Any]], ...]:
    return (arg("--full", "-l", action="store_true", help="do not ellipsize fields"),
            arg("--no-legend", action="store_true", help="do not print the column headers"))


async def _table(ctx: Context, args: argparse.Namespace, path: str,
                 fields: Mapping[str, Field]) -> int:
    rows = await ctx.client().request("GET", path)
    if ctx.format == "json":
        output.as_json(rows)
        return 0
    spec = args.fields
    if spec is None:  # list-units: its columns, and REASON when a unit waits
        spec = UNIT_COLUMNS + (",reason" if any(r.get("reason") for r in rows) else "")
    lines = render_rows(rows, fields, spec, full=args.full, legend=not args.no_legend)
    for line in align(lines):
        print(line)
    return 0


@command("fleet list-machines", "enumerate the machines in the cluster", *_fmt_args(),
         arg("--fields", default="machine,ip,metadata",
             help="columns: machine,ip,metadata,cpus,memory"))
async def list_machines(ctx: Context, args: argparse.Namespace) -> int:
    return await _table(ctx, args, "/v1/fleet/machines", MACHINE_FIELDS)


@command("fleet list-units", "list the state of the units loaded on machines", *_fmt_args(),
         arg("--fields", default=None,
             help="columns: " + ",".join(sorted(UNIT_FIELDS)) + f" (default: {UNIT_COLUMNS}, "
             "and reason when a unit waits for a machine)"))
async def list_units(ctx: Context, args: argparse.Namespace) -> int:
    return await _table(ctx, args, "/v1/fleet/units", UNIT_FIELDS)


@command("fleet list-unit-files", "list the units that exist in the cluster", *_fmt_args(),
         arg("--fields", default="unit,hash,dstate,state,target",
             help="columns: " + ",".join(sorted(UNIT_FILE_FIELDS))))
async def list_unit_files(ctx: Context, args: argparse.Namespace) -> int:
    return await _table(ctx, args, "/v1/fleet/unit-files", UNIT_FILE_FIELDS)


def local_units(args: Sequence[str], *, remote: bool = False
                ) -> tuple[list[str], list[dict[str, str]]]:
    """Names for the arguments, and the local unit files among them to submit (a missing
    instance file falls back to its local template, as fleetctl does). ``remote`` (a command
    run over SSH): arguments are names only and no file is read."""
    names: list[str] = []
    files: list[dict[str, str]] = []
    for a in args:
        name = mangle(a)
        names.append(name)
        if remote:
            continue
        path = Path(a)
        if path.is_file():
            files.append({"name": name, "text": read_file(path, "the unit file")})
            continue
        prefix, at, rest = name.partition("@")
        template = path.with_name(f"{prefix}@{rest[rest.find('.'):]}") if at else None
        if template is not None and template.is_file():
            files.append({"name": template.name, "text": read_file(template, "the unit file")})
            files.append({"name": name})
    return names, files


def missing_files(units: Sequence[str]) -> list[str]:
    """Arguments that are neither unit files nor instances (of a template)."""
    return [u for u in units if not Path(u).is_file() and "@" not in mangle(u)]


async def _submit(ctx: Context, units: Sequence[str], *, announce: bool) -> list[str]:
    names, files = local_units(units, remote=ctx.remote)
    if files:
        done = await ctx.client().request("POST", "/v1/fleet/submit", json_body={"units": files})
        if announce:
            for item in done:
                print(f"Unit {item['unit']} inactive")
    return names


@command("fleet submit", "upload unit files into the cluster (they do not start)",
         arg("units", nargs="+", metavar="UNIT", help="unit files"))
async def submit(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.remote:  # over SSH: `fleet submit NAME < FILE`, never a file on the server
        name = mangle(args.units[0])
        text = read_stdin(f"the unit file of {name}")
        done = await ctx.client().request("POST", "/v1/fleet/submit",
                                          json_body={"units": [{"name": name, "text": text}]})
        for item in done:
            print(f"Unit {item['unit']} inactive")
        return 0
    missing = missing_files(args.units)
    if missing:
        raise ShipmateError(f"unable to find unit file {missing[0]}",
                            hint="submit takes paths of unit files")
    await _submit(ctx, args.units, announce=True)
    return 0


def _block_args() -> tuple[tuple[tuple[str, ...], dict[str, Any]], ...]:
    return (arg("units", nargs="+", metavar="UNIT", help="unit names or unit files"),
            arg("--block-attempts", type=int, default=DEFAULT_BLOCK_ATTEMPTS,
                help="wait for the agents, checking up to N times every 0.5 s (0: no limit)"),
            arg("--no-block", action="store_true", help="do not wait for the agents"))


async def _transition(ctx: Context, args: argparse.Namespace, dstate: str, target: str) -> int:
    names = await _submit(ctx, args.units, announce=False)
    # "command" tells load from stop (both want "loaded") in the audit trail.
    await ctx.client().request("POST", "/v1/fleet/desired", json_body={
        "units": names, "state": dstate, "command": getattr(args, "fleet_command", "")})
    if args.no_block:
        return 0
    return await wait_for(ctx, names, target, args.block_attempts)


async def wait_for(ctx: Context, names: Sequence[str], target: str, attempts: int) -> int:
    """Poll until every unit reached ``target``; print ``Unit X target on M.../IP``."""
    pending = list(names)
    n = 0
    while pending:
        rows = {r["unit"]: r for r in await ctx.client().request("GET", "/v1/fleet/unit-files")}
        for name in list(pending):
            row = rows.get(name)
            if reached(row, target):
                pending.remove(name)
                where = _target(row, False) if row else "-"
                print(f"Unit {name} {target}" + (f" on {where}" if where not in ("-",) else ""))
        n += 1
        if not pending:
            break
        if attempts and n >= attempts:
            why = "; ".join(f"{u}: {rows[u]['reason']}" for u in pending
                            if rows.get(u, {}).get("reason"))
            raise ShipmateError(
                f"timed out waiting for {', '.join(pending)} to be {target}"
                + (f" ({why})" if why else ""),
                hint="list-unit-files shows their state; a unit may wait for a machine "
                     "(Conflicts=, MachineMetadata=); raise --block-attempts to wait longer")
        await asyncio.sleep(BLOCK_SLEEP)
    return 0


@command("fleet load", "schedule units onto machines without starting them", *_block_args())
async def load(ctx: Context, args: argparse.Namespace) -> int:
    return await _transition(ctx, args, "loaded", "loaded")


@command("fleet start", "start units in the cluster, submitting and loading if needed",
         *_block_args())
async def start(ctx: Context, args: argparse.Namespace) -> int:
    return await _transition(ctx, args, "launched", "launched")


@command("fleet stop", "stop units (they stay loaded on their machines)", *_block_args())
async def stop(ctx: Context, args: argparse.Namespace) -> int:
    return await _transition(ctx, args, "loaded", "loaded")


@command("fleet unload", "unschedule units from their machines", *_block_args())
async def unload(ctx: Context, args: argparse.Namespace) -> int:
    return await _transition(ctx, args, "inactive", "inactive")


@command("fleet destroy", "stop and remove units from the cluster",
         arg("units", nargs="+", metavar="UNIT", help="unit names"))
async def destroy(ctx: Context, args: argparse.Namespace) -> int:
    names = [mangle(u) for u in args.units]
    done = await ctx.client().request("POST", "/v1/fleet/destroy", json_body={"units": names})
    for item in done:
        if item["destroyed"]:
            print(f"Destroyed {item['unit']}")
    return 0


@command("fleet cat", "print a unit file as submitted",
         arg("unit", metavar="UNIT", help="unit name"))
async def cat(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", "/v1/fleet/cat", params={"unit": mangle(args.unit)})
    print(data["text"], end="" if data["text"].endswith("\n") else "\n")
    return 0


def render_status(data: Mapping[str, Any]) -> list[str]:
    """systemctl-status-like text for one unit, one block per machine running it."""
    out: list[str] = []
    if not data.get("machines"):
        out.append(f"\u25cf {data['unit']}")
        out.append(f"   Loaded: {'loaded' if data.get('placed') else 'not-found'} "
                   f"(target: {data.get('dstate')})")
        out.append("   Active: inactive (dead)" if data.get("placed")
                   else "   Active: not scheduled on any machine")
        if data.get("waiting"):
            out.append(f"  Waiting: {data['waiting']}")
    for block in data.get("machines", []):
        d = block.get("detail") or {}
        out.append(f"\u25cf {data['unit']} - on {block['machine']}")
        out.append(f"   Loaded: loaded (target: {data.get('dstate')}; hash {data['hash'][:7]})")
        out.append(f"   Active: {d.get('active', '-')} ({d.get('sub', '-')})"
                   + (f"; {d['result']}" if d.get("result") else ""))
        if d.get("main_pid"):
            out.append(f" Main PID: {d['main_pid']}")
        if d.get("container_id"):
            out.append(f"Container: {d['container_id'][:12]}")
        if d.get("error"):
            out.append(f"    Error: {d['error']}")
        out.append("")
        out.extend(block.get("lines") or [])
    return out


@command("fleet status", "show the status of units on their machines",
         arg("units", nargs="+", metavar="UNIT", help="unit names"))
async def status(ctx: Context, args: argparse.Namespace) -> int:
    for i, unit in enumerate(args.units):
        data = await ctx.client().request("GET", "/v1/fleet/status",
                                          params={"unit": mangle(unit)})
        if ctx.format == "json":
            output.as_json(data)
            continue
        if i:
            print()
        print("\n".join(render_status(data)))
    return 0


@command("fleet journal", "print the journal of a unit",
         arg("unit", metavar="UNIT", help="unit name"),
         arg("-f", "--follow", action="store_true", help="keep printing new lines"),
         arg("--lines", "-n", type=int, default=10, help="how many recent lines to show"))
async def journal(ctx: Context, args: argparse.Namespace) -> int:
    params = {"unit": mangle(args.unit), "lines": str(args.lines),
              "follow": "1" if args.follow else "0"}
    async for line in ctx.client().stream("GET", "/v1/fleet/journal", params=params):
        print(line, flush=True)
    return 0
