"""Do the stated intervals hold? The same candidates measured in two separate compares.

The first compare builds the candidates and measures them; the second measures the very same
artifacts again (a copy of the run folder without its measurements), after a pause. Reported: how
often the second run's median falls inside the first run's stated interval. Goal: >= 90%; an
interval that only covers one process's samples fails it (issue 14).

    python benchmarks/repeatability.py                        # ~12 min on 2 cores (two compares + 60 s pause)
    python benchmarks/repeatability.py --input-size 224 --model mobilenet_v3_large --pause 120
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)
from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def run_compare(args, run_dir: Path) -> None:
    cmd = [sys.executable, "-m", "edgebench.cli", "compare", args.model, "--device", "host", "--data", args.data,
           "--input-size", str(args.input_size), "--runs-dir", str(run_dir.parent), "--name", run_dir.name,
           "--timing-budget", str(args.timing_budget), "--processes", str(args.processes)]
    if args.runtimes:
        cmd += ["--runtimes", args.runtimes]
    if args.recipes:
        cmd += ["--recipes", args.recipes]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def rows_by_key(run_dir: Path) -> dict:
    from edgebench.report.table import load_tables

    _, _, _, rows = load_tables(run_dir)
    return {r["key"]: r for r in rows if r["status"] == "ok" and r["source"] == "measured" and r["median_ms"]}


def round_paired(first: Path, second: Path, speedups: list[dict]) -> dict | None:
    """The speedups of the same two runs read from the two rows' processes paired by round
    (measure/intervals.paired_speedup), for comparison with the in-process A/B."""
    from edgebench.core.store import RunStore
    from edgebench.measure.intervals import paired_speedup

    def medians(run: Path) -> dict:
        return {m.key: (m.extra.get("processes") or {}).get("medians_ms") or [] for m in RunStore(run).measurements()
                if m.ok and m.source == "measured"}

    a, b = medians(first), medians(second)
    rows = []
    for p in speedups:
        base_key = p["baseline_key"]
        one, two = paired_speedup(a.get(base_key, []), a.get(p["key"], [])), \
            paired_speedup(b.get(base_key, []), b.get(p["key"], []))
        if one and two:
            rows.append({"key": p["key"], "first": one, "second": two[0], "inside": one[1] <= two[0] <= one[2]})
    if not rows:
        return None
    widths = sorted(r["first"][2] / r["first"][1] for r in rows)
    return {"rows": rows, "inside": sum(r["inside"] for r in rows), "total": len(rows),
            "median_width": widths[len(widths) // 2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--runtimes", default=None, help="comma-separated (default: every runtime here)")
    parser.add_argument("--recipes", default=None, help="comma-separated (default: the default recipes)")
    parser.add_argument("--timing-budget", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=1,
                        help="worker processes per configuration (compare --processes): the stated interval then "
                             "predicts a rerun from the spread between processes")
    parser.add_argument("--pause", type=float, default=60.0, help="seconds between the two compares")
    parser.add_argument("--work", default=None, help="where the two run folders go (default: a temporary folder)")
    parser.add_argument("--name", default="repeatability")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: rewrite the results from the two run folders in --work, keeping the "
                             "load that results/NAME.json recorded when they were measured")
    quiet.add_argument(parser)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="eb-repeat-"))
    first, second = work / "first", work / "second"
    if args.report_only:
        recorded = json.loads((RESULTS / f"{args.name}.json").read_text())
        load, command = recorded["load"], recorded["command"]
    else:
        guard = quiet.start(args)
        run_compare(args, first)
        time.sleep(args.pause)
        shutil.copytree(first, second, ignore=shutil.ignore_patterns(".lock", "measurements.jsonl", "report.*",
                                                                     "results.csv", "summary.md", "pareto.*"))
        run_compare(args, second)
        load, command = guard.check_writable(), "python benchmarks/repeatability.py " + " ".join(sys.argv[1:])

    a, b = rows_by_key(first), rows_by_key(second)
    pairs = []
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        inside = ra["ci_low_ms"] <= rb["median_ms"] <= ra["ci_high_ms"]
        pairs.append({"key": key, "name": ra["name"], "backend": ra["backend"], "precision": ra["precision"],
                      "first_median_ms": ra["median_ms"], "first_interval_ms": [ra["ci_low_ms"], ra["ci_high_ms"]],
                      "second_median_ms": rb["median_ms"], "inside": inside,
                      "busy": bool(ra.get("contended") or rb.get("contended"))})
    held = sum(p["inside"] for p in pairs)
    # Speedups against the FP32 baseline on the same runtime: with processes interleaved, paired by
    # round (report/table.py), so a drift both rows shared cancels. Does the second run's land inside?
    speedups = []
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        if ra["name"] == "baseline" or not (ra.get("speedup_low") and rb.get("speedup")):
            continue
        base_key = next((k for k, r in a.items() if r["name"] == "baseline" and r["backend"] == ra["backend"]
                         and r["precision"] == "fp32" and r.get("group") == ra.get("group")), None)
        speedups.append({"key": key, "baseline_key": base_key, "name": ra["name"], "backend": ra["backend"],
                         "precision": ra["precision"],
                         "first_speedup": ra["speedup"], "first_interval": [ra["speedup_low"], ra["speedup_high"]],
                         "basis": ra.get("speedup_basis"), "second_speedup": rb["speedup"],
                         "inside": ra["speedup_low"] <= rb["speedup"] <= ra["speedup_high"]})
    speedups_held = sum(p["inside"] for p in speedups)
    by_round = round_paired(first, second, speedups)
    result = {"benchmark": "repeatability", "command": command, "round_paired": by_round,
              "pairs": pairs, "inside": held, "total": len(pairs),
              "fraction_inside": held / len(pairs) if pairs else None, "goal": ">= 90% inside",
              "speedups": speedups, "speedups_inside": speedups_held,
              "pause_s": args.pause, "runs": [str(first), str(second)]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    result["load"] = load
    result = portable(result)  # the Markdown quotes the command too
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Repeatability: does the second compare's median fall inside the first's interval?", "",
             f"`{result['command']}`: {held} of {len(pairs)} inside"
             + (f" ({100 * held / len(pairs):.0f}%; goal >= 90%)." if pairs else "."), "",
             "| candidate | runtime | precision | first median ms | first interval ms | second median ms | inside |",
             "|---|---|---|---|---|---|---|"]
    for p in pairs:
        lo, hi = p["first_interval_ms"]
        lines.append(f"| {p['name']} | {p['backend']} | {p['precision']} | {p['first_median_ms']:.3f} | "
                     f"{lo:.3f}-{hi:.3f} | {p['second_median_ms']:.3f} | {'yes' if p['inside'] else 'no'} |")
    if speedups:
        widths = sorted(p["first_interval"][1] / p["first_interval"][0] for p in speedups)
        lines += ["", f"Speedup against the FP32 baseline on the same runtime ({speedups[0]['basis']}): "
                  f"{speedups_held} of {len(speedups)} second speedups inside the first run's interval; median "
                  f"interval width {widths[len(widths) // 2]:.2f}x (high/low).", "",
                  "| candidate | runtime | precision | first speedup | first interval | second speedup | inside |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {p['name']} | {p['backend']} | {p['precision']} | {p['first_speedup']:.2f}x | "
                  f"{p['first_interval'][0]:.2f}-{p['first_interval'][1]:.2f}x | {p['second_speedup']:.2f}x | "
                  f"{'yes' if p['inside'] else 'no'} |" for p in speedups]
    if by_round and speedups and speedups[0]["basis"].startswith("in-process"):
        lines += ["", f"The same two runs read the other way, pairing the two rows' processes by round (the basis before "
                      f"the in-process A/B): {by_round['inside']} of {by_round['total']} inside; median interval width "
                      f"{by_round['median_width']:.2f}x."]
    load = result["load"]
    lines += ["", f"Load average (1 min) {load['before']['load1']:.2f} before, {load['during']['load1']:.2f} during; "
              f"other processes' CPU share {load['during']['others_share']:.1%} during"
              + (" (BUSY: " + "; ".join(load["reasons"]) + ")." if load["busy"] else ".")]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
