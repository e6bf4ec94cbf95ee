"""ONNX Runtime INT8 variants against FP32, side by side in one process: which quantization format,
weight granularity and weight range (7-bit `reduce_range` or 8-bit) pays on this CPU, and what each
costs in accuracy. The question behind it: on an x86 CPU without VNNI (AMD EPYC, AVX2), per-channel
8-bit QDQ lost ~14 points on tiny-cnn and INT8 was reported slower than FP32 for mobilenetv3.

    python benchmarks/int8_formats.py                      # mobilenetv3 @64 (trained) + resnet18 @224: ~10 min on 2 cores
    python benchmarks/int8_formats.py --models tiny-cnn:32:0.2 --data digits --threads 1 \\
        --seconds 1 --eval-samples 64 --out /tmp/int8_formats --allow-busy      # smoke run

Variants, every one calibrated on the same samples (uint8 activations, int8 weights):
  fp32; {qdq, qoperator} x {per-channel, per-tensor} x {8-bit, 7-bit reduce_range}; and
  qdq-pc-8b+u8u8: the 8-bit per-channel QDQ model run with ORT's exact U8U8 kernels
  (session.x64quantprecision), what edgebench does for an artifact built for an Arm/VNNI target.
Timing: `measure_interleaved` (blocks alternating between all variants, ABBA order) per thread
count; speedup = FP32 median / variant median, with the range of per-round ratios. Quality: top-1
on the built-in data's evaluation split for a model trained here (MODEL:SIZE:EPOCHS with EPOCHS > 0),
else top-1 agreement with FP32 (untrained weights: agreement says how much INT8 perturbs, not accuracy).

Writes benchmarks/results/int8_formats.{json,md} (or --out) only when the machine was quiet
(benchmarks/quiet.py; --allow-busy writes them marked busy).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import quiet  # noqa: E402  (benchmarks/quiet.py: the shared quiet-machine guard)

GRID = [(fmt, pc, rr) for fmt in ("qdq", "qoperator") for pc in (True, False) for rr in (False, True)]


def variant_name(fmt: str, per_channel: bool, reduce_range: bool) -> str:
    return f"{fmt}-{'pc' if per_channel else 'pt'}-{'rr' if reduce_range else '8b'}"


def build_model(spec: str, data: str, work: Path, calibration_samples: int):
    """(dataset, trained?, {variant: onnx path}) for MODEL:SIZE[:EPOCHS]."""
    import torch

    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.compress.ptq import Int8Choice, quantize_onnx
    from edgebench.models.data import load_dataset
    from edgebench.models.export import export_onnx
    from edgebench.models.zoo import build_module, resolve_model

    name, size, *rest = spec.split(":")
    epochs = float(rest[0]) if rest else 0.0
    dataset = load_dataset(data, int(size), seed=0)
    source = resolve_model(name)
    if epochs > 0:  # the same cached baseline `compare` trains with these settings
        module = build_baseline(source, dataset, BaselineOptions(epochs=epochs)).module
    else:
        torch.manual_seed(0)
        module = build_module(source, dataset.num_classes).eval()
    folder = work / spec.replace(":", "_")
    paths = {"fp32": export_onnx(module, folder / "fp32.onnx", dataset.eval.x[:8])}
    calib = dataset.calib.x[:calibration_samples]
    for fmt, pc, rr in GRID:
        why = "benchmark grid"
        paths[variant_name(fmt, pc, rr)] = quantize_onnx(paths["fp32"], folder / f"{variant_name(fmt, pc, rr)}.onnx",
                                                         calib, pc, "uint8", Int8Choice(rr, "this machine", why),
                                                         quant_format=fmt)
    paths["qdq-pc-8b+u8u8"] = quantize_onnx(paths["fp32"], folder / "qdq-pc-8b-u8u8.onnx", calib, True, "uint8",
                                            Int8Choice(False, "this machine", "exact U8U8", precise_on_x86=True))
    return dataset, epochs > 0, paths


def quality(paths: dict, dataset, trained: bool, samples: int) -> dict:
    import numpy as np

    from edgebench.backends import Placement, create_runner

    x, y = dataset.eval.x[:samples], dataset.eval.y[:samples]
    preds = {}
    for name, path in paths.items():
        runner = create_runner("onnxruntime")
        runner.load(path, Placement("cpu", "fp32" if name == "fp32" else "int8", threads=1))
        preds[name] = np.concatenate([runner.infer({"input": x[i:i + 32]})[0].argmax(1) for i in range(0, len(x), 32)])
        runner.close()
    if trained:
        return {"metric": "top1", "samples": len(y), "values": {k: float((p == y).mean()) for k, p in preds.items()}}
    return {"metric": "top1-agreement-with-fp32", "samples": len(y),
            "values": {k: float((p == preds["fp32"]).mean()) for k, p in preds.items()}}


def timing(paths: dict, dataset, threads: int, seconds: float) -> dict:
    import numpy as np

    from edgebench.backends import Placement, create_runner
    from edgebench.measure.timing import InterleavedConfig, measure_interleaved

    names = list(paths)
    runners = []
    for name in names:
        runner = create_runner("onnxruntime")
        runner.load(paths[name], Placement("cpu", "fp32" if name == "fp32" else "int8", threads=threads))
        runners.append(runner)
    feeds = [{"input": dataset.eval.x[:1]}] * len(runners)
    result = measure_interleaved(runners, feeds, InterleavedConfig(time_budget_s=seconds))
    for runner in runners:
        runner.close()
    block = result.block_iterations
    round_medians = {name: np.array([np.median(s[r * block:(r + 1) * block]) for r in range(result.rounds)])
                     for name, s in zip(names, result.samples)}
    out = {"rounds": result.rounds, "block_iterations": block, "stop": result.stop_reason, "variants": {}}
    for name, stats in zip(names, result.stats):
        ratios = round_medians["fp32"] / round_medians[name]
        out["variants"][name] = {"median_ms": stats.median_ms, "ci_ms": [stats.ci_low_ms, stats.ci_high_ms],
                                 "speedup_vs_fp32": float(result.stats[0].median_ms / stats.median_ms),
                                 "speedup_round_range": [float(ratios.min()), float(ratios.max())]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv3:64:2,resnet18:224",
                        help="MODEL:SIZE[:EPOCHS], comma-separated; EPOCHS > 0 trains on --data and scores top-1")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--threads", default="", help="comma-separated intra-op thread counts (default: 1 and "
                                                      "one per physical core)")
    parser.add_argument("--seconds", type=float, default=20.0, help="interleaved timing budget per model x threads")
    parser.add_argument("--calibration-samples", type=int, default=128)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8_formats")
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)

    import onnxruntime as ort

    from edgebench.devices.host import VNNI_FLAGS, cpu_flags, cpu_model, host_u8s8_saturates, physical_cores

    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, physical_cores()})
    started = time.time()
    out = {"cpu": cpu_model(), "machine": platform.machine(), "vnni": sorted(cpu_flags() & VNNI_FLAGS),
           "u8s8_saturates": host_u8s8_saturates(), "onnxruntime": ort.__version__, "data": args.data,
           "calibration_samples": args.calibration_samples, "seconds_per_timing": args.seconds, "models": {}}
    with tempfile.TemporaryDirectory(prefix="eb-int8-") as tmp:
        for spec in args.models.split(","):
            print(f"{spec}: building the variants", file=sys.stderr)
            dataset, trained, paths = build_model(spec, args.data, Path(tmp), args.calibration_samples)
            entry = {"quality": quality(paths, dataset, trained, args.eval_samples), "timing": {}}
            for t in threads:
                print(f"{spec}: timing at {t} thread(s)", file=sys.stderr)
                entry["timing"][str(t)] = timing(paths, dataset, t, args.seconds)
            out["models"][spec] = entry
    out["wall_s"] = round(time.time() - started, 1)
    out["load"] = guard.check_writable()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2))
    args.out.with_suffix(".md").write_text(markdown(out))
    print(f"wrote {args.out.with_suffix('.json')} and .md", file=sys.stderr)


def markdown(out: dict) -> str:
    lines = [f"# ONNX Runtime INT8 variants vs FP32 on {out['cpu']} ({out['machine']})", "",
             f"VNNI: {', '.join(out['vnni']) or 'none'}; ORT U8S8 saturation possible: {out['u8s8_saturates']}; "
             f"onnxruntime {out['onnxruntime']}; wall {out['wall_s']} s; machine busy: {out['load']['busy']}"
             + (f" ({'; '.join(out['load']['reasons'])})" if out["load"]["busy"] else ""), "",
             "Speedup = FP32 median / variant median (interleaved, one process); range = per-round ratios.", ""]
    for spec, entry in out["models"].items():
        q = entry["quality"]
        threads = list(entry["timing"])
        lines += [f"## {spec} ({q['metric']} on {q['samples']} samples)", "",
                  "| variant | " + " | ".join(f"{t} thr: median ms | speedup (range)" for t in threads) + f" | {q['metric']} |",
                  "|---|" + "---|---|" * len(threads) + "---|"]
        for name, value in q["values"].items():
            cells = []
            for t in threads:
                v = entry["timing"][t]["variants"][name]
                lo, hi = v["speedup_round_range"]
                cells += [f"{v['median_ms']:.3f}", f"{v['speedup_vs_fp32']:.2f}x ({lo:.2f}-{hi:.2f})"]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * value:.1f}% |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
