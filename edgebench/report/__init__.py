"""Reports of a run folder: report.html, report.json, results.csv, pareto.png/.svg, summary.md."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from edgebench.core.atomic import write_atomic
from edgebench.core.store import write_json
from edgebench.measure.unplanned import BUILD
from edgebench.report.html import write_html
from edgebench.report.markdown import summary_markdown
from edgebench.report.plots import pareto_png
from edgebench.report.table import lineage_text, load_tables

CSV_COLUMNS = ["name", "candidate", "backend", "processor", "precision", "executed_precision", "device", "source",
               "status", "top1", "top1_ci_low", "top1_ci_high", "median_ms", "ci_low_ms", "ci_high_ms", "p90_ms",
               "p99_ms", "mean_ms", "throughput_ips", "speedup", "size_mb", "macs", "params", "peak_rss_mb",
               "load_s", "first_inference_ms", "pareto", "lineage", "measured_on", "error", "speedup_low",
               "speedup_high", "speedup_basis", "estimate_error_pct", "contended", "interval_basis", "ranked_by",
               "wall_median_ms",
               "runtime_median_ms", "runtime_clock_basis", "flags", "runtime_version", "iterations", "stop_reason",
               "shape", "quality", "quality_metric", "quality_text", "scenario", "batch_size", "scenario_statistic",
               "scenario_value", "samples_per_s", "in_flight", "in_flight_idiom"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet reads as a formula


def csv_cell(value):
    """A cell a spreadsheet shows as text: names come from users and files, and `=cmd|...` must not run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def render_run(run_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    run_dir = Path(run_dir)
    out = Path(out_dir or (run_dir.parent if run_dir.is_file() else run_dir))
    run, candidates, measurements, rows = load_tables(run_dir)
    layers = {m.key: list(m.layers) for m in measurements}
    for r in rows:
        r["layers"] = layers.get(r["key"], [])
    skipped = {m.candidate: m.error for m in measurements if m.backend == BUILD and m.status != "ok"}
    paths = {}
    write_json(out / "report.json", {
        "run": run, "candidates": [c.to_dict() for c in candidates],
        "measurements": [m.to_dict() for m in measurements],
        "rows": [{k: v for k, v in r.items() if k != "layers"} for r in rows]})
    paths["json"] = out / "report.json"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: csv_cell("; ".join(map(str, v)) if isinstance(v, list) else v)
                         for k, v in r.items() if k != "layers"})
    write_atomic(out / "results.csv", buf.getvalue())
    paths["csv"] = out / "results.csv"
    cand_view = [dict(c.to_dict(), lineage_text=lineage_text(c.lineage)) for c in candidates]
    paths["html"] = write_html(out / "report.html", run, rows, cand_view, skipped)
    write_atomic(out / "summary.md", summary_markdown(run, rows))
    paths["markdown"] = out / "summary.md"
    title = f"{run.get('model_name', '')} for {run.get('device', '')}, input {run.get('input_shape', '')}"
    for p in pareto_png(rows, out / "pareto.png", title):
        paths[p.suffix.lstrip(".")] = p
    return paths


__all__ = ["render_run", "summary_markdown", "load_tables"]
