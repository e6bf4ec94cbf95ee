"""One page that compares several runs: the same model across devices, or one device across two
commits. Writes comparison.html (interactive, offline) and comparison.md (for a pull request).

Runs are told apart by what differs in their run.json (device, model, versions, options), so the
labels say why the runs differ rather than repeating folder names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgebench.core.atomic import write_atomic
from edgebench.core.errors import NotFoundError, UsageError
from edgebench.core.markdown import md
from edgebench.report.charts import (
    PRECISION_SYMBOLS,
    RUNTIME_COLORS,
    axis_type,
    chart_layout,
    esc,
    scatter_traces,
    script_json,
)
from edgebench.report.html import environment, flatten_environment, plotly_js
from edgebench.report.summary import recommend
from edgebench.report.table import load_tables

IGNORED_DIFFERENCES = ("started", "options.runs_dir", "options.run_name", "environment.hostname")
# Fields that name a run best when they differ, in the order they are tried.
LABEL_FIELDS = ("device", "measured_on_device", "model_name", "environment.git_commit", "environment.cpu_model",
                "environment.versions.edgebench", "data", "input_shape")


@dataclass
class RunView:
    path: Path
    run: dict
    rows: list[dict]
    label: str = ""
    report: str = ""  # the run's own report.html, relative to the comparison page


def load_runs(paths: list[Path]) -> list[RunView]:
    views = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise NotFoundError(f"run '{p}' does not exist")
        if p.is_dir() and not (p / "measurements.jsonl").is_file() and not (p / "run.json").is_file():
            raise NotFoundError(f"'{p}' is not a run folder (no measurements.jsonl or run.json)")
        run, _, _, rows = load_tables(p)
        views.append(RunView(p, run, rows))
    if len(views) < 2:
        raise UsageError("comparing needs at least two runs")
    _label(views)
    return views


def differences(views: list[RunView]) -> list[tuple[str, list[str]]]:
    """Run settings (flattened run.json) whose values are not the same in every run."""
    flat = [dict(flatten_environment(v.run)) for v in views]
    keys = sorted(set().union(*flat))
    out = []
    for k in keys:
        if any(k == i or k.startswith(i + ".") for i in IGNORED_DIFFERENCES):
            continue
        values = [f.get(k, "-") for f in flat]
        if len(set(values)) > 1:
            out.append((k, values))
    return out


def _label(views: list[RunView]) -> None:
    diffs = dict(differences(views))
    parts = [k for k in LABEL_FIELDS if k in diffs][:2]  # options differ too, but the table below shows them
    for i, v in enumerate(views):
        flat = dict(flatten_environment(v.run))
        text = " / ".join(flat.get(k, "-") for k in parts) if parts else v.path.name
        v.label = f"{chr(65 + i) if i < 26 else i + 1}: {text}"


def matched_rows(views: list[RunView]) -> list[dict]:
    """Measurements present in more than one run (same candidate name, runtime, processor, precision),
    with each run's figures and the change against the first run that has it."""
    index: dict[tuple, list] = {}
    for i, v in enumerate(views):
        for r in v.rows:
            if r["status"] == "ok" and r["median_ms"] is not None:
                index.setdefault((r["name"], r["backend"], r["processor"], r["precision"], r["source"]),
                                 [None] * len(views))[i] = r
    out = []
    for key, per_run in sorted(index.items(), key=lambda kv: kv[0]):
        if sum(r is not None for r in per_run) < 2:
            continue
        ref_index = next(i for i, r in enumerate(per_run) if r is not None)
        ref = per_run[ref_index]
        changes = [None if r is None or r is ref else _change(ref, r) for r in per_run]
        out.append({"name": key[0], "backend": key[1], "processor": key[2], "precision": key[3], "source": key[4],
                    "runs": per_run, "changes": changes, "ref": ref_index})
    return out


def _change(ref: dict, r: dict) -> dict:
    """Latency ratio against the reference, called a change only when the 95% CIs do not overlap."""
    ratio = r["median_ms"] / ref["median_ms"]
    separated = None not in (r["ci_low_ms"], ref["ci_low_ms"]) and \
        (r["ci_low_ms"] > ref["ci_high_ms"] or r["ci_high_ms"] < ref["ci_low_ms"])
    verdict = ("slower" if ratio > 1 else "faster") if separated else "within noise"
    acc = None if r["top1"] is None or ref["top1"] is None else 100 * (r["top1"] - ref["top1"])
    return {"ratio": ratio, "verdict": verdict, "accuracy_points": acc}


def latency_change(c: dict) -> str:
    return f"{100 * (c['ratio'] - 1):+.0f}% latency ({c['verdict']})"


def comparison_chart(views: list[RunView], source: str) -> dict | None:
    traces, members_all = [], []
    for i, v in enumerate(views):
        members = [r for r in v.rows if r["source"] == source and r["status"] == "ok"
                   and r["top1"] is not None and r["median_ms"] is not None]
        if not members:
            continue
        color = RUNTIME_COLORS[i % len(RUNTIME_COLORS)]
        traces += scatter_traces(members, {}, run_label=v.label, color_by_run=color)
        for group in sorted({r["group"] for r in members}):
            front = sorted((r for r in members if r["pareto"] and r["group"] == group), key=lambda r: r["median_ms"])
            traces.append({"type": "scatter", "mode": "lines", "name": esc(f"front {v.label}"), "meta": "front",
                           "legendgroup": esc(v.label), "hoverinfo": "skip",
                           "x": [r["median_ms"] for r in front], "y": [100 * r["top1"] for r in front],
                           "customdata": [r["key"] for r in front], "line": {"dash": "dash", "color": color, "shape": "hv"}})
        members_all += members
    if not members_all:
        return None
    axis = axis_type(members_all)
    layout = chart_layout(f"all runs ({source})", axis, [], [r["median_ms"] for r in members_all])
    layout["height"] = 520
    return {"id": f"cmp-{source}", "source": source, "points": len(members_all), "data": traces, "layout": layout}


def render_comparison(paths: list[Path], out_dir: Path | None = None) -> dict[str, Path]:
    views = load_runs(paths)
    out = Path(out_dir) if out_dir else (views[0].path if views[0].path.is_dir() else views[0].path.parent)
    out.mkdir(parents=True, exist_ok=True)
    for v in views:
        own = (v.path if v.path.is_dir() else v.path.parent) / "report.html"
        v.report = os.path.relpath(own, out) if own.is_file() else ""
    charts = [c for c in (comparison_chart(views, s) for s in ("measured", "estimated")) if c]
    matched = matched_rows(views)
    picks = [(v, recommend(v.rows)) for v in views]
    page = environment().get_template("compare.html.j2").render(
        views=views, diffs=differences(views), charts=charts, matched=matched, picks=picks,
        charts_json=script_json([{"id": c["id"], "data": c["data"], "layout": c["layout"]} for c in charts]),
        plotly_js=plotly_js(), symbols=PRECISION_SYMBOLS)
    write_atomic(out / "comparison.html", page)
    write_atomic(out / "comparison.md", comparison_markdown(views, matched, picks))
    return {"comparison_html": out / "comparison.html", "comparison_md": out / "comparison.md"}


def comparison_markdown(views: list[RunView], matched: list[dict], picks: list) -> str:
    lines = [f"## edgebench: comparing {len(views)} runs", ""]
    for v, choice in picks:
        pick = (f"ship {md(choice['name'])} on {md(choice['backend'])} "
                f"({md(choice['executed_precision'] or choice['precision'])}), {choice['median_ms']:.3g} ms, "
                f"{md(choice['quality_text'])}") if choice else "no pick"
        lines.append(f"- **{md(v.label)}** ({md(v.path.name)}): {pick}")
    if not matched:
        return "\n".join(lines + ["", "No measurement appears in more than one run."]) + "\n"
    head = " | ".join(f"{md(v.label)} ms" for v in views)
    lines += ["", f"| candidate | runtime | precision | {head} | change |",
              "|---|---|---|" + "---|" * len(views) + "---|"]
    for m in matched:
        cells = " | ".join("-" if r is None else f"{r['median_ms']:.3g}" for r in m["runs"])
        ref = views[m["ref"]].label.split(":")[0]
        changes = "; ".join(f"{v.label.split(':')[0]} vs {ref}: {latency_change(c)}"
                            + (f", {c['accuracy_points']:+.1f} pts" if c["accuracy_points"] is not None else "")
                            for v, c in zip(views, m["changes"]) if c)
        lines.append(f"| {md(m['name'])} | {md(m['backend'])} | {md(m['precision'])} | {cells} | {changes} |")
    lines += ["", "_A change is called slower or faster only when the two medians' 95% intervals do not overlap._"]
    return "\n".join(lines) + "\n"
