"""Accuracy levers of the passes that rewrite a model and recover it: what brings 50% channel
pruning (or a depthwise-separable rewrite) within a point of its baseline.

For MODEL (default mobilenetv3) on DATA (default mnist, 64x64) and each seed: the baseline is
trained as `compare` trains it (--epochs, that seed), then every lever applies one pass to the
same baseline with one change from that pass's default, and is evaluated in PyTorch on the eval
split (an FP32 ONNX export of the same module gives the same top-1 to rounding). Latency is not
measured here: `benchmarks/compression.py` times the candidates on every runtime. A lever is a
change to the pass's config, or `transfer` (the other built-in digit collection as a transfer set
the KD recovery also trains on). Over >= 3 seeds: mean top-1 and its change from the baseline with
95% t intervals (paired by seed), and the MACs kept.

Accuracy only, so the machine's load does not bias it (--allow-busy records that it ran busy):

    EDGEBENCH_CACHE=/tmp/ebcache-shared python benchmarks/accuracy_levers.py --seeds 0 1 2 --name prune_levers
    python benchmarks/accuracy_levers.py --model resnet18 --levers separable separable-epochs3 --name separable_levers
    python benchmarks/accuracy_levers.py --seeds 0 --levers reference --epochs 0.2 --out /tmp/x   # smoke

Writes benchmarks/results/NAME.json and NAME.md (default NAME: accuracy_levers).
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

WHOLE_GATES = "protect every layer of the squeeze-excitation gates"  # resolved per model by lever_config


# Each lever: (pass, what it changes, config, whether the KD recovery also trains on the transfer
# set). Each prune lever is one change from `reference` (the prune pass's default until this
# benchmark showed 3 epochs of recovery within a point), at --ratio of the channels.
LEVERS: dict[str, tuple[str, str, dict, bool]] = {
    "reference": ("prune", "uniform, Taylor, KD recovery at T=4, 1.5 epochs (the default until 3 epochs won here)",
                  {"epochs": 1.5}, False),
    "t1": ("prune", "KD recovery at T=1", {"epochs": 1.5, "temperature": 1.0}, False),
    "epochs3": ("prune", "3 epochs of recovery (2x)", {"epochs": 3.0}, False),
    # The pass's behaviour before it protected each gate's squeeze alone: every layer of each
    # squeeze-excitation gate protected, which froze the gated blocks' expanded channels.
    "se-whole": ("prune", "whole squeeze-excitation gates protected (the default before: the gated blocks' "
                          "expansion kept whole)", {"epochs": 3.0, WHOLE_GATES: True}, False),
    "global": ("prune", "global Taylor ranking across layers", {"epochs": 1.5, "global_ranking": True}, False),
    "transfer": ("prune", "KD recovery also on the other digit collection (unlabelled)", {"epochs": 1.5}, True),
    "nokd": ("prune", "recovery on labels alone", {"epochs": 1.5, "distill": False}, False),
    "separable": ("separable", "KD recovery at T=4, 0.5 epochs (the default until 3 epochs won here)",
                  {"epochs": 0.5}, False),
    "separable-epochs3": ("separable", "3 epochs of recovery (6x)", {"epochs": 3.0}, False),
}


def lever_config(model, change: dict) -> dict:
    """A lever's pass config for `model`: WHOLE_GATES becomes the names of every layer of its
    squeeze-excitation gates, under `protect`."""
    change = dict(change)  # LEVERS' own entry stays as it is
    if not change.pop(WHOLE_GATES, False):
        return change
    from torch import nn

    from edgebench.compress.channels import se_gates

    gates = {id(m) for gate in se_gates(model) for m in gate.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    return {**change, "protect": [n for n, m in model.named_modules() if id(m) in gates]}


def run(args) -> dict:
    from edgebench.compress import PASSES, Context
    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.models.data import load_dataset
    from edgebench.models.train import evaluate_torch
    from edgebench.models.transfer import load_transfer_set, resolve_transfer_spec
    from edgebench.models.zoo import count_params_and_macs, resolve_model

    source = resolve_model(args.model)
    data = load_dataset(args.data, args.input_size, seed=0)
    with_transfer = None
    if any(LEVERS[lever][3] for lever in args.levers):
        with_transfer = replace(data, transfer=load_transfer_set(resolve_transfer_spec("auto", args.data), data))
    rows = []
    for seed in args.seeds:
        baseline = build_baseline(source, data, BaselineOptions(epochs=args.epochs, seed=seed))
        base_top1 = evaluate_torch(baseline.module, data.eval)
        base_macs = count_params_and_macs(baseline.module, data.input_shape)[1]
        rows.append({"lever": "baseline", "seed": seed, "top1": base_top1, "macs_kept": 1.0})
        print(rows[-1], flush=True)
        for lever in args.levers:
            name, _, change, transfer = LEVERS[lever]
            config = lever_config(baseline.module, {"ratio": args.ratio, **change} if name == "prune" else change)
            ctx = Context(dataset=with_transfer if transfer else data, baseline=baseline, model_source=source,
                          work_dir=Path(tempfile.mkdtemp()), train_epochs=args.epochs, seed=seed, budget=1.0)
            t0 = time.perf_counter()
            made = PASSES.get(name)(config).apply(baseline, ctx).module
            rows.append({"lever": lever, "seed": seed, "top1": evaluate_torch(made, data.eval),
                         "macs_kept": count_params_and_macs(made, data.input_shape)[1] / base_macs,
                         "build_s": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    base = {r["seed"]: r["top1"] for r in rows if r["lever"] == "baseline"}
    summary = []
    for lever in ["baseline", *args.levers]:
        mine = [r for r in rows if r["lever"] == lever]
        summary.append({"lever": lever, "change": LEVERS[lever][1] if lever in LEVERS else "",
                        "top1": interval([100 * r["top1"] for r in mine]),
                        "delta_points": interval([100 * (r["top1"] - base[r["seed"]]) for r in mine]),
                        "macs_kept": interval([r["macs_kept"] for r in mine])})
    return {"model": source.name, "data": args.data, "eval_images": len(data.eval), "input_size": args.input_size,
            "ratio": args.ratio, "baseline_epochs": args.epochs, "per_run": rows, "summary": summary}


def fmt(stat: dict, digits: int = 1) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['half_width']:.{digits}f}" if stat["half_width"] is not None else "")


def markdown(data: dict) -> str:
    load = data["load"]
    pruned = any(LEVERS.get(s["lever"], ("",))[0] == "prune" for s in data["summary"])
    lines = [f"# Accuracy levers: {data['model']} on {data['data']} {data['input_size']}x{data['input_size']}"
             + (f" (prune levers at {data['ratio']:.0%} of channels)" if pruned else ""), "",
             f"Machine: {data['machine']}, {data['cores']} cores; load average {load['before']['load1']:.1f} before, "
             f"{load['during']['load1']:.1f} during{' (busy: marked, accuracy only)' if load['busy'] else ''}.",
             f"Baseline trained {data['baseline_epochs']:g} epochs per seed; seeds {data['seeds']}. Accuracy only "
             f"(PyTorch on the {data['eval_images']}-image eval split), no timing.", "",
             f"Command: `{data['command']}`", "",
             "| lever | change | top-1 % (mean ± 95%) | vs baseline, points (paired) | MACs kept |",
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
    parser.add_argument("--levers", nargs="+", default=[k for k, v in LEVERS.items() if v[0] == "prune"],
                        choices=list(LEVERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", default="accuracy_levers")
    parser.add_argument("--out", default=str(RESULTS))
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)  # records the load, refuses to write results from a busy machine
    data = run(args)
    data.update({"machine": platform.machine(), "cores": os.cpu_count(), "seeds": args.seeds,
                 "command": "python benchmarks/accuracy_levers.py " + " ".join(sys.argv[1:]),
                 "load": guard.check_writable()})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(portable(data), indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
