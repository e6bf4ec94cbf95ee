"""LiteRT INT8 speedup: mobilenetv3's LiteRT FP32 and full-integer INT8 rows from a real `compare`
run on this machine (trained baseline, accuracy on the deployed .tflite), beside ONNX Runtime's
for reference. Needs `pip install '.[litert,litert-convert]'` (litert-torch pins torch<2.15).

    python benchmarks/litert.py                        # default: mobilenetv3, mnist at 64x64
    python benchmarks/litert.py --model tiny-cnn --data digits --size 32 --epochs 1 --seconds 0.3   # smoke

Writes benchmarks/results/litert.json and litert.md with the machine's load while it ran; the
speedup is median(FP32) / median(INT8), with the ratio of the CI ends as its range.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import quiet  # noqa: E402  (benchmarks/quiet.py: the shared quiet-machine guard)
from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per measurement")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench-litert")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "litert")
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)  # records the load, refuses to write results from a busy machine

    import psutil

    from edgebench.backends import availability
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig
    from edgebench.models.litert_export import converter_available

    if not availability("litert").available or not converter_available():
        sys.exit("LiteRT or its converter is not installed: pip install '.[litert,litert-convert]'")
    load_before = os.getloadavg()
    started = time.time()
    opts = CompareOptions(model=args.model, device="host", data=args.data, input_size=args.size, epochs=args.epochs,
                          runs_dir=args.runs_dir, recipes=["baseline", "ptq-int8"], runtimes=["litert", "onnxruntime"],
                          timing=TimingConfig(time_budget_s=args.seconds), layer_profile=False)
    result = compare(opts)
    rows = {(m.backend, m.precision): m for m in result.measurements if m.source == "measured"}
    out = {"model": args.model, "data": args.data, "input_size": args.size, "wall_s": round(time.time() - started, 1),
           "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "cpu_count": psutil.cpu_count(),
           "run_dir": str(result.run_dir), "rows": {}, "speedup_int8": {}}
    for (backend, precision), m in sorted(rows.items()):
        out["rows"][f"{backend}/{precision}"] = {
            "status": m.status, "error": m.error, "median_ms": m.median_ms, "executed_precision": m.executed_precision,
            "ci_ms": [m.latency["ci_low_ms"], m.latency["ci_high_ms"]] if m.latency else None,
            "top1": m.top1, "delegate": m.extra.get("delegate"), "threads": m.threads}
    for backend in ("litert", "onnxruntime"):
        fp32, int8 = rows.get((backend, "fp32")), rows.get((backend, "int8"))
        if fp32 and int8 and fp32.ok and int8.ok:
            out["speedup_int8"][backend] = {
                "median": fp32.median_ms / int8.median_ms,
                "range": [fp32.latency["ci_low_ms"] / int8.latency["ci_high_ms"],
                          fp32.latency["ci_high_ms"] / int8.latency["ci_low_ms"]]}
    out["load"] = guard.check_writable()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(portable(out), indent=2))
    lines = [f"# LiteRT INT8 speedup: {args.model} ({args.data}, {args.size}x{args.size})", "",
             f"load average before/after: {load_before} / {out['load_avg_after']}; wall {out['wall_s']} s", "",
             "| runtime/precision | executed | median ms | 95% CI ms | top-1 % | delegate |", "|---|---|---|---|---|---|"]
    for name, r in out["rows"].items():
        ci = f"{r['ci_ms'][0]:.3f}-{r['ci_ms'][1]:.3f}" if r["ci_ms"] else "-"
        top1 = f"{100 * r['top1']:.1f}" if r["top1"] is not None else "-"
        median = f"{r['median_ms']:.3f}" if r["median_ms"] else (r["error"] or "-")
        lines.append(f"| {name} | {r['executed_precision'] or '-'} | {median} | {ci} | {top1} | {r['delegate'] or '-'} |")
    lines += [""] + [f"INT8 speedup on {b}: {s['median']:.2f}x (range {s['range'][0]:.2f}-{s['range'][1]:.2f}x)"
                     for b, s in out["speedup_int8"].items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
