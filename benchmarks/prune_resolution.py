"""Pruning's latency at the resolution a model is deployed at: the same weights timed at 64 and 224 px.

compression.py trains and times mobilenetv3 at 64 px, the built-in data's size. There the FP32 model
runs in about 1 ms on ONNX Runtime and OpenVINO, and much of that is per-operator overhead (dispatch,
memory traffic of small tensors), which halving the channels does not remove. A camera model runs at
224 px or more, where the convolutions' arithmetic dominates. This benchmark takes the baseline and the
pruned candidate a compression run built for each seed, exports both at each size (the weights are
the ones whose accuracy that run measured at 64 px), and times the pair with
`edgebench gate --baseline-model --current-model`: the two models interleaved in one session, the
ratio of medians with its bootstrap 95% interval. Across seeds: mean and 95% t interval.

    python benchmarks/compression.py --recipes baseline prune50 --seeds 0 1 2 --skip-distill   # builds them
    python benchmarks/prune_resolution.py --from compression --sizes 64 224

It reads the run folders named in benchmarks/results/FROM.json, so run it with the same EDGEBENCH_CACHE
(the models are signed with that cache's key) on the machine that ran the compression benchmark.
Writes benchmarks/results/prune_resolution.json and .md (or --name).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)
from compression import interval  # noqa: E402  (mean and 95% t interval over seeds)
from portable import portable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
GOAL = 0.6  # issue 15: 50% of the channels at <= 0.6x the baseline's measured latency


def run_folders(source: str, runs_dir: Path) -> list[Path]:
    """The compare run folders a compression result names, under compression.py's --runs-dir:
    `run_folder` (relative to it: compression.py makes a folder of run folders per invocation), or
    for older results only the folder's name (`<tmp>/NAME`)."""
    data = json.loads((RESULTS / f"{source}.json").read_text())
    runs = data.get("compare_runs") or [data["compare"]]
    return [runs_dir / (r.get("run_folder") or Path(r["run_dir"]).name) for r in runs]


def candidate_model(run_dir: Path, candidate: str) -> Path:
    if candidate == "baseline":
        path = run_dir / "candidates" / "baseline" / "model.pt"
    else:
        found = sorted((run_dir / "candidates").glob(f"{candidate}-*/model.pt"))
        found = [p for p in found if p.parent.name.rsplit("-", 1)[0] == candidate]
        if len(found) != 1:
            raise SystemExit(f"{run_dir}: expected one '{candidate}' candidate with a model.pt, found {len(found)}")
        path = found[0]
    if not path.is_file():
        raise SystemExit(f"{path} is missing: rerun the compression benchmark with EDGEBENCH_CACHE as it ran")
    return path


def export_at(model_pt: Path, size: int, out: Path) -> Path:
    import numpy as np
    import torch

    from edgebench.core.signing import verify
    from edgebench.models.export import export_onnx

    verify(model_pt)  # written and signed by this user's compare; refuse anything else before unpickling
    model = torch.load(str(model_pt), map_location="cpu", weights_only=False)
    sample = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    return export_onnx(model, out, sample)


def gate(baseline: Path, current: Path, runtime: str, budget: float, out: Path) -> dict:
    """One interleaved A/B session; the gate's exit code says pass/fail, which this benchmark ignores."""
    command = [sys.executable, "-m", "edgebench.cli", "gate", "--baseline-model", str(baseline),
               "--current-model", str(current), "--runtime", runtime, "--budget", str(budget),
               "--max-slowdown", "1000%", "--annotations", "never", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if not out.is_file():
        raise SystemExit(f"gate failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    result = json.loads(out.read_text())
    latency = next(k["latency"] for c in result["comparisons"] for k in c["checks"] if k["kind"] == "latency")
    return {"baseline_ms": latency["baseline_ms"], "current_ms": latency["current_ms"], "ratio": latency["ratio"],
            "ci": [latency["ci_low"], latency["ci_high"]], "n": [latency["n_baseline"], latency["n_current"]],
            "warnings": result.get("warnings", [])}


def markdown(data: dict) -> str:
    lines = ["# Pruning's latency at the deployment resolution", "",
             f"Command: `{data['command']}`", "",
             f"Machine: {data['machine']}; load average at start {data['load_start']}, at end {data['load_end']}"
             + ("; **marked busy**: " + "; ".join(data["load"]["reasons"]) if data["load"]["busy"] else "; not busy")
             + ".", "",
             f"The baseline and `{data['candidate']}` of each seed's compression run (`{data['source']}`), exported at "
             "each size and timed as an interleaved pair by `edgebench gate --baseline-model --current-model` "
             f"({data['budget']:g} s per pair). Accuracy is the compression run's, measured at 64 px.", "",
             "| size | runtime | seed | baseline ms | pruned ms | ratio (95% CI in the session) |",
             "|---|---|---|---|---|---|"]
    for r in data["pairs"]:
        lines.append(f"| {r['size']} | {r['runtime']} | {r['seed']} | {r['baseline_ms']:.3f} | {r['current_ms']:.3f} | "
                     f"{r['ratio']:.2f}x ({r['ci'][0]:.2f}-{r['ci'][1]:.2f}) |")
    lines += ["", f"Across seeds (mean ± 95% t half-width; goal <= {GOAL}x):", "",
              "| size | runtime | latency ratio | goal met |", "|---|---|---|---|"]
    for s in data["across_seeds"]:
        r = s["ratio"]
        lines.append(f"| {s['size']} | {s['runtime']} | {r['mean']:.2f} ± {r['half_width']:.2f}x (n={r['n']}) | "
                     f"{'yes' if r['mean'] + r['half_width'] <= GOAL else ('mean only' if r['mean'] <= GOAL else 'no')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default="compression",
                        help="compression result (benchmarks/results/NAME.json) whose run folders hold the models")
    parser.add_argument("--runs-dir", default=str(Path(tempfile.gettempdir()) / "edgebench-bench-runs"),
                        help="compression.py's --runs-dir, where its run folders are")
    parser.add_argument("--candidate", default="prune50")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--budget", type=float, default=20.0, help="gate's --budget: seconds of timing per pair")
    parser.add_argument("--name", default="prune_resolution")
    parser.add_argument("--out", default=str(RESULTS))
    quiet.add_argument(parser)
    args = parser.parse_args()
    guard = quiet.start(args)
    data = {"command": "python benchmarks/prune_resolution.py " + " ".join(sys.argv[1:]),
            "machine": f"{os.uname().machine}, {os.cpu_count()} cores", "source": args.source,
            "candidate": args.candidate, "budget": args.budget,
            "load_start": [round(x, 1) for x in os.getloadavg()], "started": time.time(), "pairs": []}
    with tempfile.TemporaryDirectory(prefix="eb-prune-resolution-") as scratch:
        for seed, run_dir in enumerate(run_folders(args.source, Path(args.runs_dir))):
            models = {c: candidate_model(run_dir, c) for c in ("baseline", args.candidate)}
            for size in args.sizes:
                exported = {c: export_at(p, size, Path(scratch) / f"s{seed}-{c}-{size}.onnx") for c, p in models.items()}
                for runtime in args.runtimes:
                    pair = gate(exported["baseline"], exported[args.candidate], runtime, args.budget,
                                Path(scratch) / f"gate-{seed}-{size}-{runtime}.json")
                    pair.update(seed=seed, size=size, runtime=runtime, run_dir=str(run_dir))
                    print(f"seed {seed} {size}px {runtime}: {pair['ratio']:.2f}x "
                          f"({pair['ci'][0]:.2f}-{pair['ci'][1]:.2f})", file=sys.stderr)
                    data["pairs"].append(pair)
    data["across_seeds"] = [{"size": size, "runtime": runtime,
                             "ratio": interval([p["ratio"] for p in data["pairs"]
                                                if p["size"] == size and p["runtime"] == runtime])}
                            for size in args.sizes for runtime in args.runtimes]
    data["load_end"] = [round(x, 1) for x in os.getloadavg()]
    data["load"] = guard.check_writable()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(portable(data), indent=1, default=str))
    (out / f"{args.name}.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
