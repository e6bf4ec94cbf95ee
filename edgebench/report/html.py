"""Self-contained interactive HTML report: plotly.js is embedded, so it works offline.

Everything that comes from a model, file or user is escaped by Jinja2's autoescape; data for the
charts is embedded as JSON with '<' escaped so no string can close the script element.
"""
from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from .summary import explain, recommend


def _script_json(data) -> str:
    return json.dumps(data, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def chart_data(rows: list[dict]) -> list[dict]:
    """One chart per device/processor and source; one trace per runtime x precision."""
    charts = []
    for group, source in sorted({(r["group"], r["source"]) for r in rows if r["status"] == "ok"}):
        members = [r for r in rows if (r["group"], r["source"]) == (group, source) and r["status"] == "ok"
                   and r["top1"] is not None and r["median_ms"] is not None]
        if not members:
            continue
        traces = {}
        for r in members:
            t = traces.setdefault((r["backend"], r["precision"]), {"name": f"{r['backend']} {r['precision']}", "points": []})
            t["points"].append({k: r[k] for k in ("name", "candidate", "lineage", "median_ms", "ci_low_ms", "ci_high_ms",
                                                  "top1", "top1_ci_low", "top1_ci_high", "p99_ms", "executed_precision",
                                                  "pareto", "key", "flags")})
        front = sorted((r for r in members if r["pareto"]), key=lambda r: r["median_ms"])
        charts.append({"id": f"chart{len(charts)}", "title": f"{group}", "source": source,
                       "traces": list(traces.values()),
                       "front": [{"x": r["median_ms"], "y": r["top1"]} for r in front]})
    return charts


def render_html(run: dict, rows: list[dict], candidates: list, skipped: dict) -> str:
    import plotly.offline

    env = Environment(loader=PackageLoader("edgebench.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    choice = recommend(rows)
    template = env.get_template("report.html.j2")
    return template.render(
        run=run, rows=rows, charts=chart_data(rows), charts_json=_script_json(chart_data(rows)),
        recommendation=explain(choice, rows) if choice else None, choice=choice,
        candidates=candidates, skipped=skipped, plotly_js=plotly.offline.get_plotlyjs(),
        layered=[r for r in rows if r.get("layers")], env_json=json.dumps(run.get("environment", {}), indent=2))


def write_html(path: Path, run: dict, rows: list[dict], candidates: list, skipped: dict) -> Path:
    from ..store import write_atomic

    write_atomic(path, render_html(run, rows, candidates, skipped))
    return path
