"""The short table `compare` prints at the end: the Pareto-optimal candidates and the pick."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgebench.report.flags import group_flags
from edgebench.report.summary import recommend, recommendations
from edgebench.report.table import load_tables


def summary_json(run_dir: Path, counts: dict) -> dict:
    """What `compare --json` prints: the pick, the front and how many rows ended how."""
    run, _, _, rows = load_tables(run_dir)
    keep = ("name", "candidate", "backend", "processor", "precision", "executed_precision", "device", "source",
            "scenario", "batch_size", "top1", "median_ms", "p99_ms", "speedup", "estimate_error_pct")
    choice = recommend(rows)
    return {"run_dir": str(run_dir), "report": str(Path(run_dir) / "report.html"), "counts": counts,
            "ship": {k: choice[k] for k in keep} if choice else None,
            "pareto": [{k: r[k] for k in keep} for r in rows if r["pareto"]],
            "not_measured": [{k: r[k] for k in ("name", "backend", "processor", "precision", "scenario", "batch_size",
                                                "status", "error")}
                             for r in rows if r["status"] != "ok"],
            "dropped": run.get("dropped") or {}}


def varying_dimensions(rows: list[dict]) -> tuple[bool, bool]:
    """Whether the run's rows span more than one scenario, and more than one batch size: only
    then does the table need those columns to tell its rows apart (a default run prints as before)."""
    return len({r["scenario"] for r in rows}) > 1, len({r["batch_size"] for r in rows}) > 1


def _where(r: dict, scenarios: bool, batches: bool) -> str:
    """The scenario and batch a one-line message is about, when the run has several."""
    return (f" / {r['scenario']}" if scenarios else "") + (f" / batch {r['batch_size']}" if batches else "")


def print_summary(console: Console, run_dir: Path) -> None:
    run, _, _, rows = load_tables(run_dir)
    scenarios, batches = varying_dimensions(rows)
    if not run.get("figures_are_target", True):
        console.print(f"[yellow]Asked for {escape(str(run['device']))}; figures were measured on "
                      f"{escape(str(run['measured_on']))}. Estimates for {escape(str(run['device']))} are "
                      f"labelled 'estimated'.[/yellow]")
    front = [r for r in rows if r["pareto"]]
    shown = front or [r for r in rows if r["status"] == "ok" and r["median_ms"] is not None]
    quality = (run.get("inputs") or {}).get("quality") or "top-1"
    title = "Pareto front" if front else "Measured (quality not measured: no front)"
    table = Table(title=escape(f"{title}: {run.get('model_name')} for {run.get('device')}; quality = {quality}"))
    columns = ["candidate", "runtime", "precision", "shape", "quality", "median ms", "p99 ms", "speedup", "source"]
    # Rows of several scenarios or batches would otherwise read as duplicates; the scenario's own
    # figure (p99 per query, samples per second) goes beside its name, since median ms is not it.
    columns[4:4] = (["scenario"] if scenarios else []) + (["batch"] if batches else [])
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in sorted(shown, key=lambda r: (r["group"], r["median_ms"])):
        where = ([escape(f"{r['scenario']}: {r['scenario_text']}")] if scenarios else []) + \
                ([str(r["batch_size"])] if batches else [])
        table.add_row(escape(r["name"]), escape(f"{r['backend']} ({r['processor']})"),
                      escape(r["executed_precision"] or r["precision"]), escape(r["shape"] or "-"), *where,
                      escape(r["quality_text"]), f"{r['median_ms']:.3f}",
                      f"{r['p99_ms']:.3f}" if r["p99_ms"] else "-",
                      f"{r['speedup']:.2f}x" if r["speedup"] else "-",
                      f"estimated ±{r['estimate_error_pct']:.0f}%" if r["estimate_error_pct"] else
                      "estimated, unvalidated" if r["source"] == "estimated" else r["source"])
    console.print(table)
    picks = recommendations(rows, run.get("device"))
    for pick in picks:
        choice = pick["choice"]
        # One pick per group (device and processor, batch, scenario; measured or estimated); the
        # label only when there are several, so the usual one-group run reads as before.
        label = f" ({pick['group']}, {pick['source']})" if len(picks) > 1 else ""
        console.print(f"[bold green]Ship{escape(label)}:[/bold green] {escape(pick['sentence'])}", highlight=False)
        if choice.get("contended"):
            console.print("[bold red]UNRELIABLE:[/bold red] every latency behind this pick was measured while the "
                          "machine was busy; rerun on a quiet machine (--wait-quiet SECONDS).", highlight=False)
    for group in group_flags(rows):
        if group.grouped:
            # One line for many rows that say the same; each row's own text is in the report.
            console.print(f"[yellow]flag:[/yellow] {escape(group.headline)}: {len(group.entries)} rows "
                          f"({escape(', '.join(dict.fromkeys(r['name'] for r, _ in group.entries)))})",
                          highlight=False)
            continue
        for r, flag in group.entries:
            console.print(f"[yellow]flag:[/yellow] {escape(r['name'])} / {escape(r['backend'])}"
                          f"{escape(_where(r, scenarios, batches))}: {escape(flag)}",
                          highlight=False)
    for status, colour in (("failed", "red"), ("skipped", "yellow"), ("unavailable", "yellow")):
        for r in (r for r in rows if r["status"] == status):
            console.print(f"[{colour}]{status}:[/{colour}] " + escape(f"{r['name']} / {r['backend']} / "
                                                                      f"{r['precision']}"
                                                                      f"{_where(r, scenarios, batches)}: {r['error']}"),
                          highlight=False)
    for what, why in (run.get("dropped") or {}).items():
        console.print("[yellow]left out of the report:[/yellow] " + escape(f"{what}: {why}"), highlight=False)
    console.print("Report: " + escape(str(Path(run_dir) / "report.html")), highlight=False)


def print_dropped(console: Console, run_dir: Path) -> None:
    """What `report` left out of a run and why (the report itself lists the same)."""
    run, _, _, _ = load_tables(run_dir)
    for what, why in (run.get("dropped") or {}).items():
        console.print("[yellow]left out of the report:[/yellow] " + escape(f"{what}: {why}"), highlight=False)
