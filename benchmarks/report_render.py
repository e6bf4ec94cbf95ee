"""How long `edgebench report` takes to render a run, and how big each output is.

    python benchmarks/report_render.py [RUN_DIR ...] [--repeat 5]

With no RUN_DIR it first makes a small real run (tiny-cnn on digits, 32x32, in /tmp). Writes
benchmarks/results/report_render.json and .md. report.html embeds plotly.js (about 4.5 MB) so it
works offline; that fixed cost dominates its size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)
from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)

from edgebench.report import render_run
from edgebench.report.table import load_tables

RESULTS = Path(__file__).resolve().parent / "results"


def small_run() -> Path:
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    opts = CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=2,
                          runs_dir=Path(tempfile.gettempdir()) / "eb-bench-report",
                          timing=TimingConfig(time_budget_s=0.5))
    return compare(opts).run_dir


def bench(run_dir: Path, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="eb-render-"))
        start = time.perf_counter()
        paths = render_run(run_dir, out)
        times.append(time.perf_counter() - start)
    _, cands, meas, rows = load_tables(run_dir)
    return {"run": str(run_dir), "candidates": len(cands), "measurements": len(meas),
            "render_s_median": statistics.median(times), "render_s_all": times,
            "bytes": {k: p.stat().st_size for k, p in paths.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)
    runs = args.runs or [small_run()]
    results = {"machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
               "repeat": args.repeat, "load_before": os.getloadavg()[0], "runs": [bench(r, args.repeat) for r in runs]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    results["load"] = guard.check_writable()
    (RESULTS / "report_render.json").write_text(json.dumps(portable(results), indent=2) + "\n")
    lines = ["# report rendering", "", f"`python benchmarks/report_render.py` on {results['machine']}, "
             f"median of {args.repeat} renders (all outputs: HTML, JSON, CSV, Markdown, PNG, SVG); "
             f"1-minute load average before: {results['load_before']:.1f}.", "",
             "| run | measurements | render s | report.html MB | pareto.png KB |", "|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {Path(r['run']).name} | {r['measurements']} | {r['render_s_median']:.2f} | "
                     f"{r['bytes']['html'] / 1e6:.2f} | {r['bytes']['png'] / 1e3:.0f} |")
    (RESULTS / "report_render.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
