"""A Markdown summary for a pull-request comment: the recommendation, the front, the flags.

Names come from models, files and users, so each is escaped: HTML-special characters become
entities (GitHub renders Markdown's inline HTML) and Markdown punctuation is backslashed, so a
candidate called `<script>` or `a|b` shows as exactly that and cannot break the table.
"""
from __future__ import annotations

from edgebench.core.markdown import md
from edgebench.report.flags import group_flags
from edgebench.report.summary import chart_groups, no_pick_reason, paired_basis, recommendations


def _fmt(v, spec=".3g", scale=1.0, suffix=""):
    return "-" if v is None else f"{v * scale:{spec}}{suffix}"


def _label(r: dict) -> str:
    return f"{md(r['name'])} on {md(r['backend'])} ({md(r['executed_precision'] or r['precision'])})"


def summary_markdown(run: dict, rows: list[dict]) -> str:
    lines = [f"## edgebench: {md(run.get('model_name', '?'))} for {md(run.get('device', '?'))}", ""]
    if run and not run.get("figures_are_target", True):
        lines += [f"> Figures were measured on **{md(run.get('measured_on'))}**, not on {md(run.get('device'))}; "
                  "estimates for the device are labelled as such.", ""]
    inputs = run.get("inputs") or {}
    if inputs:
        shapes = "; ".join(md(s["label"] or "") for s in inputs.get("shape_sets", []) if s.get("label"))
        lines += [f"Data: {md(inputs.get('data'))}" + (f", input shapes {shapes}" if shapes else "")
                  + f". Quality: {md(inputs.get('quality'))}.", ""]
    clocks = sorted({r["ranked_by"] for r in rows if r.get("ranked_by")})
    if clocks:
        clock_names = {"runtime": "runtime's own clock (no Python call)",
                       "throughput": "samples per second (offline rows, several requests in flight)"}
        names = dict.fromkeys(clock_names.get(c, "wall clock of the Python call") for c in clocks)
        lines += ["Latencies are ranked by the " + " and ".join(names)
                  + "; results.csv has both where the runtime keeps its own.", ""]
    busy = [r for r in rows if r.get("contended")]
    if busy:
        lines += [f"> **Unreliable figures:** {len(busy)} of {len(rows)} measurements were taken while the machine was "
                  "busy; they are flagged and left out of the Ship pick. Rerun on a quiet machine.", ""]
    picks = recommendations(rows, run.get("device"))
    for p in picks:
        c = p["choice"]
        where = f" ({md(p['group'])}, {p['source']})" if len(picks) > 1 else ""
        figure = md(c["scenario_text"]) if c.get("axis") == "throughput" else f"{_fmt(c['median_ms'])} ms median"
        lines += [f"**Ship{where}:** {_label(c)}: {figure}, {md(c['quality_text'])}", ""]
        lines += [f"- {md(why)}" for why in p["reasons"]] + [""]
    picked = {(p["group"], p["source"]) for p in picks}
    for group in chart_groups(rows):
        if group not in picked:
            lines += [f"**No pick ({md(group[0])}, {group[1]}):** {md(no_pick_reason(rows, group))}.", ""]
    if any(r["pareto"] for r in rows):
        lines += _front_table(rows) + [""]
    lines += _latency_table(rows)
    wins = sorted((r for r in rows if r["speedup"] and r["speedup_low"] and r["speedup_low"] > 1.0),
                  key=lambda r: -r["speedup"])[:3]
    if wins:
        lines += ["", "**Biggest wins against the FP32 baseline on the same runtime**", ""]
        lines += [f"- {_label(r)}: {r['speedup']:.2f}x faster (95% interval {r['speedup_low']:.2f}-"
                  f"{r['speedup_high']:.2f}x{paired_basis(r)}), "
                  f"{md(r['quality_text'])}" for r in wins]
    groups = group_flags(rows)
    if groups:
        lines += ["", "**Flags**", ""]
        for g in groups:
            if g.grouped:
                lines.append(f"- {md(g.headline)}: {len(g.entries)} rows ({md(_row_names(g.entries))})")
            else:
                lines += [f"- {md(r['name'])} / {md(r['backend'])}: {md(f)}" for r, f in g.entries]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "**Failures**", ""] + [f"- {md(r['name'])} / {md(r['backend'])} / {md(r['precision'])}: "
                                            f"{md(r['error'])}" for r in failed]
    not_run = [r for r in rows if r["status"] in ("skipped", "unavailable")]
    if not_run:
        lines += ["", "**Not measured**", ""] + [f"- {md(r['name'])} / {md(r['backend'])} / {md(r['precision'])}: "
                                                f"{r['status']}: {md(r['error'])}" for r in not_run]
    dropped = run.get("dropped") or {}
    if dropped:
        lines += ["", "**Left out of this report** (stored records that could not be read)", ""]
        lines += [f"- {md(what)}: {md(why)}" for what, why in dropped.items()]
    return "\n".join(lines) + "\n"


def _front_table(rows: list[dict]) -> list[str]:
    lines = ["| candidate | runtime | precision | quality | median ms | p99 ms | speedup | where |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["pareto"]), key=lambda r: (r["group"], r["median_ms"])):
        lines.append(f"| {md(r['name'])} | {md(r['backend'])} | {md(r['executed_precision'] or r['precision'])} | "
                     f"{md(r['quality_text'])} | {_fmt(r['median_ms'])} | {_fmt(r['p99_ms'])} | "
                     f"{_fmt(r['speedup'], '.2f', suffix='x')} | {md(r['group'])}, {r['source']} |")
    return ["**Pareto front** (no other option is both faster and of better quality)", ""] + lines


def _latency_table(rows: list[dict]) -> list[str]:
    """Every measured candidate x runtime x shape, whatever its quality: latency is always shown."""
    measured = sorted((r for r in rows if r["status"] == "ok" and r["median_ms"] is not None),
                      key=lambda r: (r["group"], r["source"], r["median_ms"]))
    if not measured:
        return []
    # A run of single-stream batch-1 rows only keeps the table it always had.
    scenarios = any(r.get("scenario", "single-stream") != "single-stream" or r.get("batch_size", 1) != 1
                    for r in measured)
    extra = " scenario | scenario figure |" if scenarios else ""
    lines = ["**All measurements**", "", "| candidate | runtime | precision | input shape | median ms | p99 ms | "
             f"quality |{extra} where |", "|---|---|---|---|---|---|---|" + ("---|---|" if scenarios else "") + "---|"]
    for r in measured:
        cells = f" {md(r['scenario'])} b{r['batch_size']} | {md(r['scenario_text'])} |" if scenarios else ""
        lines.append(f"| {md(r['name'])} | {md(r['backend'])} | {md(r['executed_precision'] or r['precision'])} | "
                     f"{md(r['shape'] or '-')} | {_fmt(r['median_ms'])} | {_fmt(r['p99_ms'])} | "
                     f"{md(r['quality_text'])} |{cells} {md(r['group'])}, {r['source']} |")
    return lines


def _row_names(entries: list[tuple[dict, str]]) -> str:
    """Each row as name / runtime, with its device and processor where the rows span several."""
    several = len({(r["group"], r["source"]) for r, _ in entries}) > 1
    return ", ".join(f"{r['name']} / {r['backend']} / {r['executed_precision'] or r['precision']}"
                     + (f" ({r['group']}, {r['source']})" if several else "") for r, _ in entries)
