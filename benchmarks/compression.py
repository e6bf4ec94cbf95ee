"""Compression benchmark: what each technique buys for a model on the built-in data.

Records, for MODEL (default mobilenetv3) on DATA (default mnist, 64x64):
  1. every default candidate's accuracy (on the evaluation split, run on the deployed artifact) and
     median latency per runtime, relative to the FP32 baseline on the same runtime (a full `compare`);
  2. the distilled student against the same student trained without a teacher (same epochs, same
     seed, same initial weights), over several seeds;
  3. the goals of issue 3, each marked met or not: 50% pruning's latency ratio (<= 0.6x) and accuracy
     after recovery (within 1 point), INT8 accuracy drop (<= 0.5 point) and speedup per runtime (>= 1.0x).

Figures depend on the machine and on its load; rerun on a quiet machine before quoting them:

    EDGEBENCH_CACHE=/tmp/ebcache-shared python benchmarks/compression.py            # 3 seeds: ~35-45 min on 2 cores
    python benchmarks/compression.py --seeds 0 --skip-compare                     # distillation only
    EDGEBENCH_CACHE=/tmp/ebcache-shared python benchmarks/compression.py --levers   # + pruning levers: ~50-60 min

--levers adds, beside the default recipes, the pruning levers at 50% as extra recipes (YAML files in a
temporary folder): latency-aware against uniform per-layer ratios, magnitude and BN-scale against
the default Taylor importance, recovery without KD against the default KD from the unpruned model, and a
3-step prune-recover schedule; each is one more prune build (1.5 epochs of recovery per budget unit,
the same as prune50's) plus its timing, and the goal "latency-aware beats uniform's measured latency
at equal accuracy" is marked met or not.

--recipes runs only the recipes named, e.g. resnet18's depthwise-separable rewrite against its baseline
(goal: >= 1.5x measured speedup within 1 point):

    python benchmarks/compression.py --model resnet18 --recipes baseline separable --skip-distill

With several seeds, `compare` runs once per seed (baseline and every pass trained with that seed)
and each technique's accuracy change and latency ratio are given as the mean and a 95% t interval
over the seeds.

Writes benchmarks/results/compression.json and compression.md (or --name; --out for another folder).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)
from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run this checkout's edgebench, not another installed copy

RESULTS = ROOT / "benchmarks" / "results"


# The pruning levers, each one change from the default prune50 (uniform ratios, Taylor importance,
# KD recovery from the unpruned model, one step), which is their reference.
LEVERS: dict[str, tuple[str, dict]] = {
    "prune50": ("reference: uniform, Taylor, KD recovery, 1 step", {}),
    "prune50-latency": ("latency-aware per-layer ratios (NetAdapt-style)", {"ratios": "latency"}),
    "prune50-magnitude": ("magnitude (L2) importance", {"importance": "magnitude"}),
    "prune50-bn": ("BN-scale importance", {"importance": "bn"}),
    "prune50-nokd": ("recovery on labels alone, no KD", {"distill": False}),
    "prune50-steps3": ("3 prune-recover steps, same total recovery", {"steps": 3}),
}


def lever_recipes(folder: Path) -> list[str]:
    """The levers other than the reference (a default recipe) as recipe YAML files in `folder`."""
    import yaml

    paths = []
    for name, (_, change) in LEVERS.items():
        if not change:
            continue
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "passes": [{"pass": "prune", "config": {"ratio": 0.5, **change}}]}))
        paths.append(str(path))
    return paths


def invocation_dir(runs_dir: str, name: str) -> Path:
    """A folder of run folders for this invocation alone. compare resumes a run folder of the same
    settings and keeps the candidates stored there, whatever code built them: a rerun after a change
    to a pass would otherwise report the old candidates' rows as new."""
    return Path(runs_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def run_compare(args, seed: int = 0) -> dict:
    from edgebench.compare import CompareOptions, compare
    from edgebench.compress import DEFAULT_RECIPES
    from edgebench.measure.timing import TimingConfig
    from edgebench.report.table import load_tables

    # None keeps compare's own default list; --levers adds the lever recipes after it.
    recipes = args.recipes
    if args.levers:
        recipes = list(recipes or DEFAULT_RECIPES) + lever_recipes(Path(tempfile.mkdtemp(prefix="levers-")))
    opts = CompareOptions(model=args.model, device="host", data=args.data, input_size=args.input_size,
                          epochs=args.epochs, budget=args.budget, runs_dir=args.invocation_dir, seed=seed,
                          recipes=recipes, timing=TimingConfig(time_budget_s=args.timing_budget),
                          processes=args.processes)
    started = time.perf_counter()
    result = compare(opts)
    wall = time.perf_counter() - started
    _, candidates, _, rows = load_tables(result.run_dir)
    table = rows_against_baseline(rows)
    return {"seed": seed, "run_dir": str(result.run_dir),
            # Relative to --runs-dir (no machine path): where prune_resolution.py finds it again.
            "run_folder": str(Path(result.run_dir).relative_to(args.runs_dir)), "wall_s": wall,
            "skipped": result.skipped_recipes, "rows": table,
            "notes": {c.name: list(c.notes) for c in candidates}}


def rows_against_baseline(rows: list[dict]) -> list[dict]:
    """compare's measured rows, each with its accuracy change and latency ratio against the FP32
    baseline on the same runtime."""
    by_key = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        by_key[(r["name"], r["backend"], r["precision"])] = r
    table = []
    for (name, backend, precision), r in sorted(by_key.items()):
        base = by_key.get(("baseline", backend, "fp32" if precision == "int8" else precision))
        # The report's speedup against the baseline, on its best basis: the in-process A/B (the
        # candidate timed beside the baseline in one worker), else the rows' processes paired by
        # round, else the two rows' intervals; its basis is kept beside it.
        speedup = r.get("speedup")
        table.append({
            "candidate": name, "lineage": r["lineage"], "backend": backend, "precision": precision,
            "executed_precision": r["executed_precision"], "top1": r["top1"], "median_ms": r["median_ms"],
            "ci_ms": [r["ci_low_ms"], r["ci_high_ms"]], "params": r["params"], "macs": r["macs"],
            "latency_ratio_vs_baseline": (1 / speedup if speedup else
                                          (r["median_ms"] / base["median_ms"]) if base else None),
            "latency_ratio_interval": [1 / r["speedup_high"], 1 / r["speedup_low"]] if speedup and r["speedup_low"] else None,
            "latency_ratio_basis": r["speedup_basis"] if speedup else "ratio of the two medians",
            "top1_delta_points_vs_baseline": (100 * (r["top1"] - base["top1"])) if base and r["top1"] is not None else None,
            "flags": r["flags"]})
    return table


def interval(values: list) -> dict:
    """Mean and 95% t interval (half-width) over seeds."""
    from scipy import stats

    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "half_width": None, "n": 0}
    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"mean": mean, "half_width": None, "n": 1}
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"mean": mean, "half_width": float(stats.t.ppf(0.975, len(values) - 1)) * sd / len(values) ** 0.5,
            "n": len(values)}


def across_seeds(runs: list[dict]) -> list[dict]:
    """Per (technique, runtime, precision): accuracy change and latency ratio over the seeds."""
    keys = sorted({(r["candidate"], r["backend"], r["precision"]) for run in runs for r in run["rows"]})
    out = []
    for key in keys:
        rows = [r for run in runs for r in run["rows"] if (r["candidate"], r["backend"], r["precision"]) == key]
        out.append({"candidate": key[0], "backend": key[1], "precision": key[2],
                    "top1": interval([r["top1"] for r in rows]),
                    "top1_delta_points": interval([r["top1_delta_points_vs_baseline"] for r in rows]),
                    "latency_ratio": interval([r["latency_ratio_vs_baseline"] for r in rows])})
    return out


def goals(compare_result: dict) -> list[dict]:
    out = []
    for r in compare_result["rows"]:
        if r["candidate"] == "prune50" and r["precision"] == "fp32" and r["latency_ratio_vs_baseline"]:
            span = r.get("latency_ratio_interval")
            out.append({"goal": f"prune50 latency ratio on {r['backend']} <= 0.6x",
                        "value": f"{r['latency_ratio_vs_baseline']:.3f}"
                                 + (f" (95% {span[0]:.2f}-{span[1]:.2f}, {r['latency_ratio_basis']})" if span else ""),
                        "met": r["latency_ratio_vs_baseline"] <= 0.6})
            out.append({"goal": f"prune50 accuracy within 1 point on {r['backend']}",
                        "value": round(r["top1_delta_points_vs_baseline"], 2),
                        "met": r["top1_delta_points_vs_baseline"] >= -1.0})
        if r["candidate"] == "separable" and r["precision"] == "fp32" and r["latency_ratio_vs_baseline"]:
            out.append({"goal": f"separable speedup on {r['backend']} >= 1.5x",
                        "value": round(1 / r["latency_ratio_vs_baseline"], 3),
                        "met": 1 / r["latency_ratio_vs_baseline"] >= 1.5})
            out.append({"goal": f"separable accuracy within 1 point on {r['backend']}",
                        "value": round(r["top1_delta_points_vs_baseline"], 2),
                        "met": r["top1_delta_points_vs_baseline"] >= -1.0})
        if r["candidate"] in ("ptq-int8", "qat-int8") and r["latency_ratio_vs_baseline"]:
            speedup = 1 / r["latency_ratio_vs_baseline"]
            out.append({"goal": f"{r['candidate']} speedup on {r['backend']} >= 1.0x", "value": round(speedup, 3),
                        "met": speedup >= 1.0})
            out.append({"goal": f"{r['candidate']} accuracy drop on {r['backend']} <= 0.5 point",
                        "value": round(-r["top1_delta_points_vs_baseline"], 2),
                        "met": r["top1_delta_points_vs_baseline"] >= -0.5})
    return out


def levers(runs: list[dict], budget: str) -> dict:
    """Each lever's accuracy and latency against the baseline over the seeds (FP32 rows), and whether
    latency-aware ratios beat uniform ones on measured latency at equal accuracy (within 1 point)."""
    from edgebench.compress.base import parse_budget
    from edgebench.compress.prune import RECOVERY_EPOCHS

    rows = [r for r in across_seeds(runs) if r["candidate"] in LEVERS and r["precision"] == "fp32"]
    table = [dict(r, change=LEVERS[r["candidate"]][0]) for r in rows]
    goal = []
    for backend in sorted({r["backend"] for r in rows}):
        got = {r["candidate"]: r for r in rows if r["backend"] == backend}
        uniform, latency = got.get("prune50"), got.get("prune50-latency")
        if not (uniform and latency) or None in (uniform["latency_ratio"]["mean"], latency["latency_ratio"]["mean"]):
            goal.append({"goal": f"latency-aware beats uniform's measured latency at equal accuracy on {backend}",
                         "value": "not measured (a lever has no FP32 row here)", "met": False})
            continue
        faster = latency["latency_ratio"]["mean"] < uniform["latency_ratio"]["mean"]
        accuracy_gap = 100 * (latency["top1"]["mean"] - uniform["top1"]["mean"])
        goal.append({"goal": f"latency-aware beats uniform's measured latency at equal accuracy on {backend}",
                     "value": f"{latency['latency_ratio']['mean']:.3f}x vs {uniform['latency_ratio']['mean']:.3f}x, "
                              f"top-1 {accuracy_gap:+.2f} points", "met": faster and accuracy_gap >= -1.0})
    return {"table": table, "goals": goal, "recovery_epochs_each": RECOVERY_EPOCHS * parse_budget(budget),
            "notes": {name: run["notes"].get(name, []) for run in runs[:1] for name in LEVERS}}


def distill_vs_scratch(args) -> dict:
    """The default distillation (KD from the baseline) against cross-entropy alone, per seed."""
    import torch

    from edgebench.compress import Context
    from edgebench.compress.base import parse_budget
    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.compress.distill import SCRATCH_LR, DistillPass
    from edgebench.core.cache import content_key
    from edgebench.core.module_cache import cached_module
    from edgebench.models.data import load_dataset
    from edgebench.models.train import TrainConfig, evaluate_torch, fit
    from edgebench.models.zoo import STUDENT_OF, build_module, resolve_model

    source = resolve_model(args.model)
    dataset = load_dataset(args.data, args.input_size, seed=0)
    baseline = build_baseline(source, dataset, BaselineOptions(epochs=args.epochs, seed=0))
    arch = STUDENT_OF[source.name]
    budget = parse_budget(args.budget)
    epochs = args.epochs * budget  # what DistillPass gives a new student by default
    rows = []
    for seed in args.seeds:
        ctx = Context(dataset=dataset, baseline=baseline, model_source=source, work_dir=Path(tempfile.mkdtemp()),
                      train_epochs=args.epochs, seed=seed, budget=budget)
        t0 = time.perf_counter()
        distilled = DistillPass({}).apply(baseline, ctx).module
        t1 = time.perf_counter()

        def scratch(seed=seed):
            torch.manual_seed(seed)  # the same initial student as DistillPass builds
            return fit(build_module(resolve_model(arch), dataset.num_classes), dataset.train,
                       TrainConfig(epochs=epochs, lr=SCRATCH_LR, seed=seed))
        plain = cached_module(content_key("bench-scratch-student", arch, dataset.fingerprint(), epochs, seed), scratch)
        t2 = time.perf_counter()
        rows.append({"seed": seed, "distilled_top1": evaluate_torch(distilled, dataset.eval),
                     "scratch_top1": evaluate_torch(plain, dataset.eval),
                     "distill_train_s": t1 - t0, "scratch_train_s": t2 - t1})
    diffs = [100 * (r["distilled_top1"] - r["scratch_top1"]) for r in rows]
    return {"teacher": source.name, "teacher_top1": evaluate_torch(baseline.module, dataset.eval), "student": arch,
            "epochs": epochs, "loss": "kd (T=4) + cross-entropy", "per_seed": rows,
            "mean_gain_points": sum(diffs) / len(diffs)}


def markdown(data: dict) -> str:
    lines = [f"# Compression benchmark: {data['model']} on {data['data']} {data['input_size']}x{data['input_size']}",
             "", f"Machine: {data['machine']}; load average at start {data['load_start']}, at end {data['load_end']}. "
             "Shared machines give noisy latencies: rerun on a quiet one before quoting.", "",
             f"Command: `{data['command']}`", ""]
    comp = data.get("compare")
    if comp:
        lines += [f"Default `compare` took {comp['wall_s']:.0f} s.", "",
                  "| candidate | runtime | precision | top-1 % | vs baseline (points) | median ms | latency vs baseline |",
                  "|---|---|---|---|---|---|---|"]
        for r in comp["rows"]:
            delta = r["top1_delta_points_vs_baseline"]
            ratio = r["latency_ratio_vs_baseline"]
            span = r.get("latency_ratio_interval")
            lines.append(f"| {r['candidate']} | {r['backend']} | {r['executed_precision'] or r['precision']} | "
                         f"{100 * r['top1']:.1f} | {'' if delta is None else f'{delta:+.1f}'} | {r['median_ms']:.3f} | "
                         f"{'' if ratio is None else f'{ratio:.2f}x'}"
                         f"{f' ({span[0]:.2f}-{span[1]:.2f})' if span else ''} |")
        bases = Counter(r["latency_ratio_basis"] for r in comp["rows"] if r["candidate"] != "baseline")
        lines += ["", "Latency vs baseline (95% interval), by basis: "
                  + "; ".join(f"{basis}: {n} rows" for basis, n in bases.most_common()) + "."]
        if comp["skipped"]:
            lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in comp["skipped"].items())]
        lines += ["", "| goal | value | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |" for g in data["goals"]]
    seeds = data.get("across_seeds")
    if seeds and len(data.get("compare_runs", [])) > 1:
        def fmt(i, scale=1.0, suffix=""):
            if i["mean"] is None:
                return ""
            hw = "" if i["half_width"] is None else f" ± {scale * i['half_width']:.2f}"
            return f"{scale * i['mean']:.2f}{hw}{suffix}"
        lines += ["", f"Over {len(data['compare_runs'])} seeds (mean ± 95% t interval):", "",
                  "| candidate | runtime | precision | top-1 % | vs baseline (points) | latency vs baseline |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['candidate']} | {r['backend']} | {r['precision']} | {fmt(r['top1'], 100)} | "
                  f"{fmt(r['top1_delta_points'])} | {fmt(r['latency_ratio'], 1.0, 'x')} |" for r in seeds]
    lev = data.get("levers")
    if lev:
        def cell(i, scale=1.0, suffix=""):
            if i["mean"] is None:
                return ""
            hw = "" if i["half_width"] is None else f" ± {scale * i['half_width']:.2f}"
            return f"{scale * i['mean']:.2f}{hw}{suffix}"
        lines += ["", f"Pruning levers at 50%, FP32, over {len(data['compare_runs'])} seed(s) (mean ± 95% t interval); "
                  f"each is one prune build with {lev['recovery_epochs_each']:g} epochs of recovery:", "",
                  "| lever | change from prune50 | runtime | top-1 % | vs baseline (points) | latency vs baseline |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['candidate']} | {r['change']} | {r['backend']} | {cell(r['top1'], 100)} | "
                  f"{cell(r['top1_delta_points'])} | {cell(r['latency_ratio'], 1.0, 'x')} |" for r in lev["table"]]
        lines += ["", "| goal | value | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |" for g in lev["goals"]]
    dist = data.get("distill")
    if dist:
        lines += ["", f"Distillation: {dist['student']} taught by {dist['teacher']} (top-1 {100 * dist['teacher_top1']:.1f}%), "
                  f"{dist['epochs']:g} epochs, {dist['loss']}, against the same student without a teacher:", "",
                  "| seed | distilled top-1 % | no teacher top-1 % |", "|---|---|---|"]
        lines += [f"| {r['seed']} | {100 * r['distilled_top1']:.1f} | {100 * r['scratch_top1']:.1f} |" for r in dist["per_seed"]]
        lines += ["", f"Mean gain: {dist['mean_gain_points']:+.2f} points."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=2.0, help="baseline epochs (as compare's --epochs)")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--timing-budget", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--processes", type=int, default=1,
                        help="measure each pair in N interleaved processes (compare's --processes): the latency "
                             "ratio against the baseline is then paired by round, with a 95%% interval")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-distill", action="store_true")
    parser.add_argument("--runs-dir", default=str(Path(tempfile.gettempdir()) / "edgebench-bench-runs"))
    parser.add_argument("--name", default="compression")
    parser.add_argument("--out", default=str(RESULTS), help="folder for NAME.json and NAME.md (smoke runs: a temporary one)")
    parser.add_argument("--levers", action="store_true", help="add the pruning levers at 50%% as extra recipes")
    parser.add_argument("--recipes", nargs="+", default=None,
                        help="only these recipes (built-in names or YAML files; default: compare's own list), e.g. "
                             "--model resnet18 --recipes baseline separable")
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)
    args.invocation_dir = invocation_dir(args.runs_dir, args.name)

    data = {"model": args.model, "data": args.data, "input_size": args.input_size,
            "command": "python benchmarks/compression.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_start": [round(x, 1) for x in os.getloadavg()], "started": time.time()}
    from edgebench.measure.environment import fingerprint
    data["environment"] = fingerprint()
    if not args.skip_compare:
        runs = [run_compare(args, seed) for seed in args.seeds]
        data["compare"] = runs[0]
        data["compare_runs"] = runs
        data["across_seeds"] = across_seeds(runs)
        data["goals"] = [dict(g, seed=run["seed"]) for run in runs for g in goals(run)]
        if args.levers:
            data["levers"] = levers(runs, args.budget)
    if not args.skip_distill:
        data["distill"] = distill_vs_scratch(args)
    data["load_end"] = [round(x, 1) for x in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data["load"] = guard.check_writable()
    (out / f"{args.name}.json").write_text(json.dumps(portable(data), indent=1, default=str))
    (out / f"{args.name}.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
