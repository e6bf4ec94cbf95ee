"""Self-contained interactive HTML report: plotly.js is embedded, so it works offline.

Everything that comes from a model, file or user is escaped by Jinja2's autoescape in the page
and by `charts.esc` in chart text; chart data is embedded as JSON with '<', '>' and '&' escaped
so no string can close the script element.
"""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from edgebench.core.atomic import write_atomic
from edgebench.report.charts import run_charts, script_json
from edgebench.report.flags import group_flags
from edgebench.report.summary import recommendations


def environment() -> Environment:
    env = Environment(loader=PackageLoader("edgebench.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, spec="%.3f", scale=1.0: "-" if v is None else spec % (v * scale)
    return env


def plotly_js() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def flatten_environment(env: dict, prefix: str = "") -> list[tuple[str, str]]:
    items = []
    for k, v in sorted(env.items()):
        if isinstance(v, dict):
            items += flatten_environment(v, f"{prefix}{k}.")
        else:
            items.append((f"{prefix}{k}", "-" if v is None else str(v)))
    return items


def layer_view(layers: list[dict], limit: int = 15) -> dict:
    """The slowest layers with their share of the measured time, and the time per op type."""
    total = sum(layer.get("time_us") or 0 for layer in layers) or 1.0
    by_op: dict[str, float] = {}
    for layer in layers:
        by_op[str(layer.get("op_type"))] = by_op.get(str(layer.get("op_type")), 0.0) + (layer.get("time_us") or 0)
    top = sorted(layers, key=lambda layer: -(layer.get("time_us") or 0))[:limit]
    return {"total_us": total, "count": len(layers),
            "top": [dict(layer, share=100 * (layer.get("time_us") or 0) / total) for layer in top],
            "ops": [(op, 100 * t / total) for op, t in sorted(by_op.items(), key=lambda kv: -kv[1])[:6]]}


def render_html(run: dict, rows: list[dict], candidates: list, skipped: dict) -> str:
    picks = recommendations(rows, run.get("device"))
    charts = run_charts(rows, {(p["group"], p["source"]): p["choice"] for p in picks})
    scored = sum(1 for r in rows if r["status"] == "ok" and r["quality"] is not None and r["median_ms"] is not None)
    template = environment().get_template("report.html.j2")
    return template.render(
        run=run, rows=sorted(rows, key=lambda r: (not r["pareto"], r["status"] != "ok", r["median_ms"] or 1e18)),
        charts=charts, charts_json=script_json([{"id": c["id"], "data": c["data"], "layout": c["layout"]}
                                                for c in charts]),
        picks=picks, candidates=candidates, skipped=skipped, plotly_js=plotly_js(), scored=scored,
        flag_groups=group_flags(rows), many_groups=len({(r["group"], r["source"]) for r in rows}) > 1,
        failed=[r for r in rows if r["status"] == "failed"],
        not_run=[r for r in rows if r["status"] in ("skipped", "unavailable") and r["backend"] != "(build)"],
        estimated=any(r["source"] == "estimated" for r in rows),
        layered=[dict(r, view=layer_view(r["layers"])) for r in rows if r.get("layers")],
        env_items=flatten_environment(run.get("environment", {})))


def write_html(path: Path, run: dict, rows: list[dict], candidates: list, skipped: dict) -> Path:

    write_atomic(path, render_html(run, rows, candidates, skipped))
    return path
