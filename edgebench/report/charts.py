"""Plotly figure specs (data + layout as plain dicts) for the interactive reports.

Plotly renders a subset of HTML in every text it draws (titles, legends, hover labels), so each
string that can come from a model, file or user goes through `esc` first; plotly turns the
entities back into characters when it draws them, which is why `<script>` shows as text.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence

from edgebench.report.pareto import rank_ms
from edgebench.report.summary import chart_groups, group_key

RUNTIME_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
PRECISION_SYMBOLS = {"fp32": "circle", "bf16": "square", "fp16": "diamond", "int8": "triangle-up", "int4": "star-triangle-up"}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def script_json(data) -> str:
    """JSON that is safe inside a <script> element: no string can close it or open a comment."""
    return json.dumps(data, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _num(v, spec=".3g", scale=1.0) -> str:
    return "-" if v is None else f"{v * scale:{spec}}"


def hover_text(r: dict, run_label: str | None = None) -> str:
    lines = [f"<b>{esc(r['name'])}</b>" + (f" [{esc(run_label)}]" if run_label else ""),
             f"{esc(r['backend'])}, {esc(r['processor'])}, requested {esc(r['precision'])}, "
             f"executed {esc(r['executed_precision'] or '?')}",
             f"recipe: {esc(r['lineage'])}",
             f"median {_num(r['median_ms'])} ms (95% CI {_num(r['ci_low_ms'])}-{_num(r['ci_high_ms'])}), "
             f"p99 {_num(r['p99_ms'])} ms" + (f"; {esc(r['scenario'])}: {esc(r['scenario_text'])}"
                                               if r.get("scenario", "single-stream") != "single-stream" else ""),
             f"top-1 {_num(r['top1'], '.2f', 100)}% (95% CI {_num(r['top1_ci_low'], '.1f', 100)}-"
             f"{_num(r['top1_ci_high'], '.1f', 100)})" if r["top1"] is not None else esc(r.get("quality_text") or "")]
    if r.get("speedup"):
        lines.append(f"speedup vs FP32 baseline: {r['speedup']:.2f}x")
    lines.append(("estimated" + (f" by {esc(r['estimate_method'])}" if r.get("estimate_method") else "")
                  + (f" (±{r['estimate_error_pct']:.0f}%)" if r.get("estimate_error_pct") else
                     f" (unvalidated: {_num(r['ci_low_ms'])}-{_num(r['ci_high_ms'])} ms)"))
                 if r["source"] == "estimated" else "measured")
    if r["pareto"]:
        lines.append("<b>on the Pareto front</b>")
    lines += [f"⚠ {esc(f)}" for f in r.get("flags", [])]
    return "<br>".join(lines)


def y_value(r: dict) -> float:
    """The chart's y: top-1 in percent where labels scored the row, else the quality value itself."""
    return 100 * r["top1"] if r["top1"] is not None else r["quality"]


def y_title(members: list[dict]) -> str:
    labels = {r.get("quality_metric") for r in members}
    if labels <= {"top1"}:
        return "top-1 accuracy, % (bars: 95% Wilson CI)"
    if labels == {"agreement"}:
        return "cosine similarity with the FP32 outputs (first output)"
    return ", ".join(sorted({r.get("quality_label") or "quality" for r in members}))


def _errors(points: list[dict]) -> tuple[dict, dict]:
    def arr(hi, lo, mid, scale=1.0):
        return [max(0.0, scale * (p[hi] - p[mid])) if p[hi] is not None else 0 for p in points], \
               [max(0.0, scale * (p[mid] - p[lo])) if p[lo] is not None else 0 for p in points]
    xp, xm = arr("ci_high_ms", "ci_low_ms", "median_ms")
    if any(p.get("axis") == "throughput" for p in points):  # the latency CI does not bound ms per sample
        xp, xm = [0.0] * len(points), [0.0] * len(points)
    yp, ym = arr("top1_ci_high", "top1_ci_low", "top1", 100)
    style = {"type": "data", "symmetric": False, "thickness": 1, "width": 3}
    return dict(style, array=xp, arrayminus=xm), dict(style, array=yp, arrayminus=ym, color="rgba(90,90,90,0.45)")


def axis_type(rows: list[dict]) -> str:
    lat = [rank_ms(r) for r in rows if rank_ms(r)]
    return "log" if lat and max(lat) / min(lat) > 8 else "linear"


def scatter_traces(members: list[dict], colors: dict, run_label: str | None = None,
                   color_by_run: str | None = None) -> list[dict]:
    """One trace per runtime x precision (meta 'points'), each point one measurement."""
    traces = []
    by_trace: dict[tuple, list[dict]] = {}
    for r in members:
        by_trace.setdefault((r["backend"], r["precision"]), []).append(r)
    for (backend, precision), points in sorted(by_trace.items()):
        ex, ey = _errors(points)
        color = color_by_run or colors[backend]
        name = f"{backend} {precision}" + (f" [{run_label}]" if run_label else "")
        traces.append({
            "type": "scatter", "mode": "markers", "name": esc(name), "meta": "points",
            "legendgroup": esc(run_label or backend),
            "x": [rank_ms(p) for p in points], "y": [y_value(p) for p in points],
            "error_x": dict(ex, color=color), "error_y": ey,
            "customdata": [p["key"] for p in points],
            "text": [hover_text(p, run_label) for p in points], "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": color, "symbol": PRECISION_SYMBOLS.get(precision, "circle"),
                       "size": [15 if p["pareto"] else 10 for p in points], "opacity": 0.9,
                       "line": {"color": "#111", "width": [2 if p["pareto"] else 0 for p in points]}}})
    return traces


def front_trace(members: list[dict], name: str = "Pareto front", color: str = "#333") -> dict:
    front = sorted((r for r in members if r["pareto"]), key=rank_ms)
    return {"type": "scatter", "mode": "lines+text", "name": esc(name), "meta": "front",
            "x": [rank_ms(r) for r in front], "y": [y_value(r) for r in front],
            "customdata": [r["key"] for r in front],
            "text": [esc(f"{r['name']} · {r['backend']} {r['precision']}") for r in front],
            "textposition": "top right", "textfont": {"size": 11, "color": color},
            "line": {"dash": "dash", "color": color, "width": 1.5, "shape": "hv"}, "hoverinfo": "skip"}


def ship_annotation(choice: dict) -> dict:
    return {"x": math.log10(rank_ms(choice)) if choice.get("_log") else rank_ms(choice),
            "y": y_value(choice), "text": "<b>ship this</b>", "showarrow": True, "arrowhead": 2,
            "ax": 0, "ay": 46, "font": {"color": "#14632d", "size": 12}, "bgcolor": "#e7f6ec",
            "bordercolor": "#6cbf84"}


def run_charts(rows: list[dict], picks: dict) -> list[dict]:
    """One chart per (device / processor, source) of a run, in the order of `picks` (a dict from
    group key to the chosen row; the device asked about first), then any group without a pick."""
    charts: list[dict] = []
    for key in list(picks) + [k for k in chart_groups(rows) if k not in picks]:
        members = [r for r in rows if group_key(r) == key and r["status"] == "ok"
                   and r["quality"] is not None and rank_ms(r) is not None]
        unscored = sum(1 for r in rows if group_key(r) == key and r["status"] == "ok" and r["quality"] is None)
        if not members:
            continue
        backends = sorted({r["backend"] for r in members})
        colors = dict(zip(backends, RUNTIME_COLORS * 4))
        axis = axis_type(members)
        traces = scatter_traces(members, colors) + [front_trace(members)]
        annotations = []
        if key in picks:
            annotations.append(ship_annotation(dict(picks[key], _log=axis == "log")))
        source = "estimated" if key[1] == "estimated" else "measured"
        layout = chart_layout(f"{key[0]} ({source})", axis, annotations, [rank_ms(r) for r in members],
                              y_title(members), throughput=any(r.get("axis") == "throughput" for r in members))
        charts.append({"id": f"chart{len(charts)}", "group": key[0], "source": key[1], "unscored": unscored,
                       "points": len(members), "data": traces, "layout": layout})
    return charts


def log_ticks(values: list[float]) -> dict:
    """1-2-5 ticks across the range, labelled plainly (plotly's own log ticks read '2 3 4 0.1')."""
    values = [v for v in values if v and v > 0]
    if not values:
        return {}
    lo, hi = min(values) / 1.3, max(values) * 1.3
    ticks = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 3, 5)]
    ticks = [t for t in ticks if lo <= t <= hi]
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]} if len(ticks) >= 2 else {}


def chart_layout(title: str, axis: str, annotations: list[dict], latencies: Sequence[float] = (),
                 y_axis: str = "top-1 accuracy, % (bars: 95% Wilson CI)", throughput: bool = False) -> dict:
    ticks = log_ticks(list(latencies)) if axis == "log" and latencies else {}
    x_title = ("ms per sample = 1 / throughput (offline: requests in flight)" if throughput else
               "median latency per image, ms (batch 1; bars: 95% CI)")
    return {"title": {"text": esc(title), "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
            "xaxis": {"title": {"text": x_title +
                                ("; log scale" if axis == "log" else "")}, "type": axis, "zeroline": False, **ticks},
            "yaxis": {"title": {"text": esc(y_axis)}},
            "annotations": annotations, "hovermode": "closest", "hoverlabel": {"align": "left"},
            "margin": {"t": 40, "r": 10, "b": 55, "l": 60}, "legend": {"font": {"size": 11}}, "height": 460}
