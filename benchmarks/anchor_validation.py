"""Published-anchor validation of device estimates, per device (used by `benchmarks/estimator.py`).

    python benchmarks/estimator.py --anchors          # pure computation: no timing, any load (~1-2 min: exports)
    python benchmarks/estimator.py --host-ratios      # TIMED: this machine's reference-model latencies (~3 min)

`--anchors` predicts every published anchor of every device profile from the device's other
anchors (leave-one-anchor-out, edgebench/estimate/anchors.py) and writes
benchmarks/results/anchor_validation.{json,md}, each anchor with its source. The ratio between two
reference models comes from this machine's measurements on the same runtime class when
`--host-ratios` has cached them (benchmarks/results/host_ratios.json), else from the roofline on
the device's own datasheet peaks.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
HOST_RATIOS = RESULTS / "host_ratios.json"
SIZE = 224


def reference_graphs(work: Path) -> dict[str, Path]:
    import torch
    import torchvision

    from edgebench.estimate.anchors import REFERENCE_MODELS
    from edgebench.models.export import export_onnx

    out = {}
    for name in REFERENCE_MODELS:
        path = work / f"{name}-{SIZE}.onnx"
        if not path.is_file():
            torch.manual_seed(0)
            module = getattr(torchvision.models, name)(weights=None).eval()
            x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
            export_onnx(module, path, x, rtol=1e-2, atol=1e-3)
        out[name] = path
    return out


def _precision(text: str) -> str:
    return "int8" if text.startswith("int8") else "fp16" if "fp16" in text and not text.startswith("fp32") else "fp32"


def make_ratio(profile, graphs: dict[str, Path], host_ratios: dict):
    """ratio(a, b) = latency(a.model) / latency(b.model): measured here on the same runtime class
    when cached, else the roofline's on the device's own peaks."""
    from edgebench.estimate.roofline import ACHIEVABLE_BANDWIDTH, ACHIEVABLE_COMPUTE, PRIOR, Hardware, ops_of, predict

    ops = {m: ops_of(p) for m, p in graphs.items()}

    def ratio(a, b):
        basis = "onnxruntime/fp32" if a.processor == "cpu" else None  # CPU runtimes: one class here
        measured = host_ratios.get(basis, {}) if basis else {}
        ka, kb = f"{a.model}@{SIZE}", f"{b.model}@{SIZE}"
        if ka in measured and kb in measured:
            return measured[ka] / measured[kb]
        proc = profile.processors.get(a.processor)
        if proc is None or not proc.peak_gflops or not proc.memory_bandwidth_gbs:
            return None
        hw = Hardware({k: v * ACHIEVABLE_COMPUTE for k, v in proc.peak_gflops.items()},
                      proc.memory_bandwidth_gbs * ACHIEVABLE_BANDWIDTH, 1.0)
        precision = _precision(a.precision)
        return predict(PRIOR, ops[a.model], precision, hw) / predict(PRIOR, ops[b.model], precision, hw)

    return ratio


def run_anchor_validation(work: Path) -> dict:
    from edgebench.devices.profiles import all_profiles
    from edgebench.estimate.anchors import leave_one_anchor_out, summarize_errors

    work.mkdir(parents=True, exist_ok=True)
    graphs = reference_graphs(work)
    host_ratios = json.loads(HOST_RATIOS.read_text()).get("ratios", {}) if HOST_RATIOS.is_file() else {}
    devices, rows = {}, []
    for profile in all_profiles().values():
        if profile.name == "host":
            continue
        found = leave_one_anchor_out(profile, make_ratio(profile, graphs, host_ratios))
        rows += found
        devices[profile.name] = dict(summarize_errors(found), anchors=len(profile.anchors),
                                     usable_latency_anchors=sum(a.usable_latency for a in profile.anchors))
    overall = summarize_errors(rows)
    result = {"benchmark": "anchor_validation", "method": "leave-one-anchor-out over published figures",
              "ratio_basis": "host-measured (onnxruntime fp32) for CPU anchors" if host_ratios else
              "roofline on each device's datasheet peaks (no host ratios cached: run --host-ratios)",
              "goal": ">= 80% of anchors within +-25%", "overall": overall, "devices": devices, "anchors": rows,
              "note": "pure computation over published figures: independent of this machine's load"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "anchor_validation.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "anchor_validation.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    o = result["overall"]
    lines = ["# Device estimates against published anchors (leave-one-anchor-out)", "",
             f"Ratio basis: {result['ratio_basis']}. Goal: {result['goal']}.", "",
             f"Overall: {o.get('n', 0)} anchors predicted"
             + (f", {100 * o['within_25pct']:.0f}% within ±25%, median |error| {o['median_abs_pct']:.0f}%."
                if o.get("n") else "."), "",
             "| device | anchors | predicted | within ±25% | median abs err | status | meets goal |",
             "|---|---|---|---|---|---|---|"]
    for name, d in result["devices"].items():
        lines.append(f"| {name} | {d['anchors']} | {d['n']} | "
                     + (f"{100 * d['within_25pct']:.0f}% | {d['median_abs_pct']:.0f}% |" if d["n"] else "- | - |")
                     + f" {d['status']} | {'yes' if d.get('meets_goal') else 'no'} |")
    lines += ["", "| device | model | runtime | processor | precision | threads | published ms | predicted ms | "
              "error | from | source |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["anchors"]:
        lines.append(f"| {r['device']} | {r['model']} | {r['runtime']} | {r['processor']} | {r['precision']} | "
                     f"{r['threads'] or '-'} | {r['published_ms']:.3g} | {r['predicted_ms']:.3g} | "
                     f"{100 * r['error']:+.0f}% | {', '.join(r['from'])} | {r['source'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def measure_host_ratios(work: Path, budget_s: float = 2.0) -> dict:
    """TIMED: latency of each reference model here on ONNX Runtime fp32 (the CPU runtime class)."""
    from edgebench.backends import Placement, create_runner
    from edgebench.devices.host import cpu_model, physical_cores
    from edgebench.measure.timing import TimingConfig, measure

    graphs = reference_graphs(work)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    ratios: dict = {"onnxruntime/fp32": {}}
    for name, path in graphs.items():
        runner = create_runner("onnxruntime")
        runner.load(path, Placement("cpu", "fp32", physical_cores()))
        stats, _ = measure(runner, x, TimingConfig(time_budget_s=budget_s))
        runner.close()
        ratios["onnxruntime/fp32"][f"{name}@{SIZE}"] = stats.median_ms
        print(f"{name:20s} onnxruntime fp32 {stats.median_ms:8.3f} ms ({stats.stop_reason})", flush=True)
    return {"cpu": cpu_model(), "threads": physical_cores(), "ratios": ratios}
