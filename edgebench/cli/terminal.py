"""The short table `compare` prints at the end: the Pareto-optimal candidates and the pick."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgebench.report.summary import explain, recommend
from edgebench.report.table import load_tables


def print_summary(console: Console, run_dir: Path) -> None:
    run, _, _, rows = load_tables(run_dir)
    if not run.get("figures_are_target", True):
        console.print(f"[yellow]Asked for {run['device']}; figures were measured on {run['measured_on']}. "
                      f"Estimates for {run['device']} are labelled 'estimated'.[/yellow]")
    front = [r for r in rows if r["pareto"]]
    shown = front or [r for r in rows if r["status"] == "ok" and r["median_ms"] is not None]
    quality = (run.get("inputs") or {}).get("quality") or "top-1"
    title = "Pareto front" if front else "Measured (quality not measured: no front)"
    table = Table(title=f"{title}: {run.get('model_name')} for {run.get('device')}; quality = {quality}")
    for col in ("candidate", "runtime", "precision", "shape", "quality", "median ms", "p99 ms", "speedup", "source"):
        table.add_column(col, overflow="fold")
    for r in sorted(shown, key=lambda r: (r["group"], r["median_ms"])):
        table.add_row(r["name"], f"{r['backend']} ({r['processor']})", r["executed_precision"] or r["precision"],
                      r["shape"] or "-", r["quality_text"], f"{r['median_ms']:.3f}",
                      f"{r['p99_ms']:.3f}" if r["p99_ms"] else "-",
                      f"{r['speedup']:.2f}x" if r["speedup"] else "-",
                      f"estimated ±{r['estimate_error_pct']:.0f}%" if r["estimate_error_pct"] else
                      "estimated, unvalidated" if r["source"] == "estimated" else r["source"])
    console.print(table)
    choice = recommend(rows)
    if choice:
        console.print(f"[bold green]Ship:[/bold green] {explain(choice, rows)}", highlight=False)
        if choice.get("contended"):
            console.print("[bold red]UNRELIABLE:[/bold red] every latency behind this pick was measured while the "
                          "machine was busy; rerun on a quiet machine (--wait-quiet SECONDS).", highlight=False)
    for r in rows:
        for flag in r["flags"]:
            console.print(f"[yellow]flag:[/yellow] {r['name']} / {r['backend']}: {flag}", highlight=False)
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} measurement(s) failed; see the report.[/red]")
    console.print(f"Report: {Path(run_dir) / 'report.html'}")
