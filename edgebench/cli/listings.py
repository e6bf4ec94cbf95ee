"""What `edgebench backends` and `edgebench devices` print: the runtimes usable here and the device
profiles, as a table or as JSON."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def show_backends(console: Console, json_out: bool) -> None:
    from edgebench.backends import BACKENDS, availability
    from edgebench.cli.parts import missing_parts

    if json_out:
        found = []
        for name, runner in BACKENDS.items():
            a = availability(name)
            found.append({"runtime": name, "available": a.available, "version": a.version, "unverified": runner.unverified,
                          "processors": list(a.processors if a.available else runner.devices),
                          "precisions": list(a.precisions), "reason": a.reason, "install": a.install})
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title="runtimes")
    for col in ("runtime", "status", "version", "processors", "precisions", "note"):
        table.add_column(col, overflow="fold")
    for name, runner in BACKENDS.items():
        a = availability(name)
        unverified = f"UNVERIFIED: {runner.unverified}" if runner.unverified else ""
        if a.available:
            table.add_row(escape(name), "[green]available", escape(a.version or ""), ", ".join(a.processors),
                          ", ".join(a.precisions), escape(unverified))
        else:
            table.add_row(escape(name), "[red]unavailable", "", ", ".join(runner.devices), "",
                          escape("; ".join(filter(None, [f"{a.reason}; {a.install or ''}", unverified]))))
    console.print(table)
    for part, modules in missing_parts():  # a light (measuring-only) install says what it lacks
        text = f"{part.name}: {part.brings} (missing {', '.join(modules)}); pip install '{part.extra}'"
        console.print(f"[yellow]not installed:[/yellow] {escape(text)}", highlight=False)


def show_devices(console: Console, json_out: bool) -> None:
    from edgebench.backends.host import local_device_name
    from edgebench.devices.profiles import all_profiles

    here = local_device_name()
    if json_out:
        typer.echo(json.dumps([{"device": p.name, "aliases": list(p.aliases), "this_machine": p.name == here,
                                "processors": {k: {"name": v.name, "runtimes": list(v.runtimes),
                                                   "precisions": list(v.precisions)}
                                               for k, v in p.processors.items()}}
                               for p in all_profiles().values()], indent=2))
        return
    table = Table(title="device profiles")
    for col in ("device", "aliases", "processors", "runtimes", "this machine"):
        table.add_column(col, overflow="fold")
    for p in all_profiles().values():
        procs = ", ".join(f"{k}: {v.name}" for k, v in p.processors.items())
        rts = ", ".join(sorted({r for v in p.processors.values() for r in v.runtimes}))
        table.add_row(escape(p.name), escape(", ".join(p.aliases)), escape(procs), escape(rts),
                      "yes" if p.name == here else "")
    console.print(table)
    console.print(f"This machine is recognised as: [bold]{escape(here)}[/bold]")
