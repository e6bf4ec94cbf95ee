"""Pruning accuracy levers: what brings 50% channel pruning within a point of its baseline.

For MODEL (default mobilenetv3) on DATA (default mnist, 64x64) and each seed: the baseline is
trained as `compare` trains it (--epochs, that seed), then every lever prunes the same baseline at
--ratio with one change from the default prune pass and is evaluated in PyTorch on the eval split
(an FP32 ONNX export of the same module gives the same top-1 to rounding; latency is not measured
here: `benchmarks/compression.py --levers` times the candidates on every runtime). A lever is a
change to the prune pass's config, or `transfer` (the other built-in digit collection as a
transfer set the KD recovery also trains on). Over >= 3 seeds: mean top-1 and its change from the
baseline with 95% t intervals (paired by seed), and the MACs kept.

Accuracy only, so the machine's load does not bias it (--allow-busy records that it ran busy):

    EDGEBENCH_CACHE=/tmp/ebcache-shared python benchmarks/prune_levers.py --seeds 0 1 2
    python benchmarks/prune_levers.py --seeds 0 --levers reference --epochs 0.2 --out /tmp/x   # smoke

Writes benchmarks/results/prune_levers.json and prune_levers.md (or --name).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run this checkout's edgebench, not another installed copy
sys.path.insert(0, str(ROOT / "benchmarks"))
import quiet  # noqa: E402  (benchmarks/quiet.py: the shared quiet-machine guard)
from compression import interval  # noqa: E402
from portable import portable  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# Each lever: (what it changes, prune config change, whether the KD recovery gets the transfer set).
LEVERS: dict[str, tuple[str, dict, bool]] = {
    "reference": ("the default prune pass: uniform, Taylor, KD recovery at T=4, 1.5 epochs", {}, False),
    "t1": ("KD recovery at T=1", {"temperature": 1.0}, False),
    "epochs3": ("3 epochs of recovery (2x)", {"epochs": 3.0}, False),
    "global": ("global Taylor ranking across layers", {"global_ranking": True}, False),
    "transfer": ("KD recovery also on the other digit collection (unlabelled)", {}, True),
    "nokd": ("recovery on labels alone", {"distill": False}, False),
}


def run(args) -> dict:
    from edgebench.compress import Context
    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.compress.prune import PrunePass
    from edgebench.models.data import load_dataset
    from edgebench.models.train import evaluate_torch
    from edgebench.models.transfer import load_transfer_set, resolve_transfer_spec
    from edgebench.models.zoo import count_params_and_macs, resolve_model

    source = resolve_model(args.model)
    data = load_dataset(args.data, args.input_size, seed=0)
    with_transfer = None
    if any(LEVERS[lever][2] for lever in args.levers):
        with_transfer = replace(data, transfer=load_transfer_set(resolve_transfer_spec("auto", args.data), data))
    rows = []
    for seed in args.seeds:
        baseline = build_baseline(source, data, BaselineOptions(epochs=args.epochs, seed=seed))
        base_top1 = evaluate_torch(baseline.module, data.eval)
        base_macs = count_params_and_macs(baseline.module, data.input_shape)[1]
        rows.append({"lever": "baseline", "seed": seed, "top1": base_top1, "macs_kept": 1.0})
        print(rows[-1], flush=True)
        for lever in args.levers:
            _, change, transfer = LEVERS[lever]
            ctx = Context(dataset=with_transfer if transfer else data, baseline=baseline, model_source=source,
                          work_dir=Path(tempfile.mkdtemp()), train_epochs=args.epochs, seed=seed, budget=1.0)
            t0 = time.perf_counter()
            pruned = PrunePass({"ratio": args.ratio, **change}).apply(baseline, ctx).module
            rows.append({"lever": lever, "seed": seed, "top1": evaluate_torch(pruned, data.eval),
                         "macs_kept": count_params_and_macs(pruned, data.input_shape)[1] / base_macs,
                         "build_s": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    base = {r["seed"]: r["top1"] for r in rows if r["lever"] == "baseline"}
    summary = []
    for lever in ["baseline", *args.levers]:
        mine = [r for r in rows if r["lever"] == lever]
        summary.append({"lever": lever, "change": LEVERS[lever][0] if lever in LEVERS else "",
                        "top1": interval([100 * r["top1"] for r in mine]),
                        "delta_points": interval([100 * (r["top1"] - base[r["seed"]]) for r in mine]),
                        "macs_kept": interval([r["macs_kept"] for r in mine])})
    return {"model": source.name, "data": args.data, "input_size": args.input_size, "ratio": args.ratio,
            "baseline_epochs": args.epochs, "per_run": rows, "summary": summary}


def fmt(stat: dict, digits: int = 1) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['half_width']:.{digits}f}" if stat["half_width"] is not None else "")


def markdown(data: dict) -> str:
    load = data["load"]
    lines = [f"# Pruning levers: {data['model']} at {data['ratio']:.0%} of channels on {data['data']} "
             f"{data['input_size']}x{data['input_size']}", "",
             f"Machine: {data['machine']}, {data['cores']} cores; load average {load['before']['load1']:.1f} before, "
             f"{load['during']['load1']:.1f} during{' (busy: marked, accuracy only)' if load['busy'] else ''}.",
             f"Baseline trained {data['baseline_epochs']:g} epochs per seed; seeds {data['seeds']}. Accuracy only "
             f"(PyTorch on the 1000-image eval split), no timing.", "",
             f"Command: `{data['command']}`", "",
             "| lever | change from the default prune pass | top-1 % (mean ± 95%) | vs baseline, points (paired) | MACs kept |",
             "|---|---|---|---|---|"]
    for s in data["summary"]:
        lines.append(f"| {s['lever']} | {s['change']} | {fmt(s['top1'])} | "
                     f"{fmt(s['delta_points'], 2) if s['lever'] != 'baseline' else ''} | {fmt(s['macs_kept'], 2)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv3")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=2.0, help="baseline epochs (as compare's --epochs)")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", default="prune_levers")
    parser.add_argument("--out", default=str(RESULTS))
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)  # records the load, refuses to write results from a busy machine
    data = run(args)
    data.update({"machine": platform.machine(), "cores": os.cpu_count(), "seeds": args.seeds,
                 "command": "python benchmarks/prune_levers.py " + " ".join(sys.argv[1:]),
                 "load": guard.check_writable()})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(portable(data), indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
