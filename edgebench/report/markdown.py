"""A Markdown summary for a pull-request comment: the recommendation, the front, the flags."""
from __future__ import annotations

from .summary import explain, recommend


def _fmt(v, spec=".3g", scale=1.0, suffix=""):
    return "-" if v is None else f"{v * scale:{spec}}{suffix}"


def summary_markdown(run: dict, rows: list[dict]) -> str:
    lines = [f"## edgebench: {run.get('model_name', '?')} for {run.get('device', '?')}", ""]
    if run and not run.get("figures_are_target", True):
        lines += [f"> Figures were measured on **{run.get('measured_on')}**, not on {run.get('device')}; "
                  "estimates for the device are labelled as such.", ""]
    choice = recommend(rows)
    if choice:
        lines += [f"**Ship:** {explain(choice, rows)}", ""]
    lines += ["| candidate | runtime | precision | top-1 % | median ms | p99 ms | speedup | source |",
              "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["pareto"]), key=lambda r: r["median_ms"]):
        lines.append(f"| {r['name']} | {r['backend']} | {r['executed_precision'] or r['precision']} | "
                     f"{_fmt(r['top1'], '.1f', 100)} | {_fmt(r['median_ms'])} | {_fmt(r['p99_ms'])} | "
                     f"{_fmt(r['speedup'], '.2f', suffix='x')} | {r['source']} |")
    flags = [(r, f) for r in rows for f in r["flags"]]
    if flags:
        lines += ["", "**Flags**", ""] + [f"- {r['name']} / {r['backend']}: {f}" for r, f in flags]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "**Failures**", ""] + [f"- {r['name']} / {r['backend']} / {r['precision']}: {r['error']}"
                                            for r in failed]
    return "\n".join(lines) + "\n"
