"""Pass generality: does every pass yield a working candidate, or decline in one line, on the
torchvision classification family? (Torch-Pruning's own claim: 81 of 85 torchvision models
prunable.)

For each model (untrained, at a tiny input size, no fine-tuning: this is about the passes'
mechanics, not accuracy) and each pass, the outcome is one of
  ok        a candidate whose output still has the dataset's classes,
  declined  a one-line EdgebenchError reason (check() or apply()),
  crash     anything else: a bug to fix (its type and first line are recorded).

    python benchmarks/pass_generality.py                                                # all, ~1-2 h on 2 cores
    python benchmarks/pass_generality.py --models resnet18 googlenet --name smoke --out /tmp/pg  # smoke
    python benchmarks/pass_generality.py --merge a.json b.json   # one table from runs over parts of the family

Writes benchmarks/results/pass_generality.json and pass_generality.md (or --out, --name).

Models above --max-params (default 150 M parameters) are skipped up front, each with its count in
the results: a pass holds several copies of the model (the parent, its rewrite, the ONNX export,
the quantizers' graphs), which for vit_h_14 or regnet_y_128gf would pass 8 GB; the count is
torchvision's own (its weights' metadata), so checking it costs nothing.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run this checkout's edgebench, not another installed copy
sys.path.insert(0, str(ROOT / "benchmarks"))
import quiet  # noqa: E402  (benchmarks/quiet.py: the shared quiet-machine guard)
from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)

RESULTS = ROOT / "benchmarks" / "results"
TINY = {"prune": {"ratio": 0.5, "epochs": 0, "distill": False},
        "sparsify": {"sparsity": 0.5, "epochs": 0, "distill": False},
        "separable": {"epochs": 0, "distill": False},
        "lowrank": {"rank_ratio": 0.25, "epochs": 0, "distill": False},
        "distill": {"epochs": 0.002},
        "ptq": {"calibration_samples": 8},
        "qat": {"epochs": 0.002, "calibration_samples": 8}}


def classification_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def parameter_count(model_name: str, num_classes: int, input_size: int) -> int:
    """The model's parameters: torchvision's own figure (its weights' metadata, nothing downloaded;
    at 1000 classes), else counted on a copy built on the meta device (no memory)."""
    import torch
    import torchvision

    from edgebench.models.zoo import build_module, resolve_model

    if model_name in torchvision.models.list_models(module=torchvision.models):
        return int(torchvision.models.get_model_weights(model_name).DEFAULT.meta["num_params"])
    with torch.device("meta"):
        model = build_module(resolve_model(model_name), num_classes, input_size)
    return sum(p.numel() for p in model.parameters())


class PassTimeout(Exception):
    """The pass ran past --time-limit (compare's --build-timeout would fail that recipe alone)."""


def _raise_timeout(signum, frame):
    raise PassTimeout()


def one(model_name: str, pass_name: str, dataset, work: Path, time_limit: float = 0) -> dict:
    """The pass on one model; with `time_limit` seconds (SIGALRM), a pass that runs longer is a
    'timeout' outcome instead of holding the whole table up."""
    import signal

    if time_limit:
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.alarm(int(time_limit))
    try:
        return _one(model_name, pass_name, dataset, work)
    except PassTimeout:
        return {"outcome": "timeout", "detail": f"still running after {time_limit:.0f} s (stopped)", "s": time_limit}
    finally:
        if time_limit:
            signal.alarm(0)


def _one(model_name: str, pass_name: str, dataset, work: Path) -> dict:
    import torch

    from edgebench.compress import PASSES, Candidate, Context
    from edgebench.compress.builder import _check_outputs
    from edgebench.core.errors import EdgebenchError
    from edgebench.models.export import export_onnx
    from edgebench.models.zoo import build_module, resolve_model

    torch.manual_seed(0)
    source = resolve_model(model_name)
    started = time.perf_counter()
    try:
        module = build_module(source, dataset.num_classes, dataset.input_size).eval()
        _check_outputs(module, dataset)
        base = Candidate("baseline", module=module, lineage=({"pass": "baseline", "config": {}},))

        def export(c):
            return {"onnx": export_onnx(c.module, work / f"e{id(c.module)}" / "model.onnx", dataset.eval.x[:8])}

        ctx = Context(dataset=dataset, baseline=base, model_source=source, work_dir=work, export=export)
        p = PASSES.get(pass_name)(TINY[pass_name])
        reason = p.check(base, ctx)
        if reason:
            return {"outcome": "declined", "detail": reason, "s": time.perf_counter() - started}
        out = p.apply(base, ctx)
        if out.module is not None:
            with torch.no_grad():
                y = out.module.eval()(torch.from_numpy(dataset.eval.x[:2]))
            assert y.shape == (2, dataset.num_classes), f"output shape {tuple(y.shape)}"
        return {"outcome": "ok", "detail": (out.notes or [""])[-1][:160], "s": time.perf_counter() - started}
    except EdgebenchError as e:
        return {"outcome": "declined", "detail": str(e), "s": time.perf_counter() - started}
    except PassTimeout:
        raise
    except Exception as e:  # noqa: BLE001 - the benchmark counts crashes; each is a bug to fix
        return {"outcome": "crash", "detail": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                "s": time.perf_counter() - started}


def markdown(data: dict) -> str:
    rows = data["rows"]
    passes = list(dict.fromkeys(r["pass"] for r in rows))
    lines = [f"# Pass generality on {len({r['model'] for r in rows})} torchvision classifiers "
             f"({data['data']} at {data['input_size']} px, untrained, no fine-tuning)", "",
             f"Machine: {data['machine']}; load average {data['load']['before']['load1']:.1f} before, "
             f"{data['load']['during']['load1']:.1f} during.",
             f"Command: `{data['command']}`", "", *([data["note"], ""] if data.get("note") else []),
             "Outcomes only: the per-row seconds in the JSON were taken beside other work "
             f"({'--allow-busy, ' if data['load'].get('allow_busy') else ''}"
             f"{'busy' if data['load'].get('busy') else 'quiet'}) and are no timing figure.", "",
             f"Per pass over {len({r['model'] for r in rows})} models:", "",
             "| pass | ok | declined | crash | timeout |", "|---|---|---|---|---|"]
    for p in passes:
        c = Counter(r["outcome"] for r in rows if r["pass"] == p)
        lines.append(f"| {p} | {c['ok']} | {c['declined']} | {c['crash']} | {c['timeout']} |")
    skipped = data.get("skipped", {})
    if skipped:
        lines += ["", f"Skipped up front ({len(skipped)}, not in the counts):", ""]
        lines += [f"- {m}: {why}" for m, why in skipped.items()]
    crashes = [r for r in rows if r["outcome"] == "crash"]
    lines += ["", f"Crashes ({len(crashes)}):", ""]
    lines += [f"- {r['model']} / {r['pass']}: {r['detail'].splitlines()[0][:200]}" for r in crashes] or ["- none"]
    lines += ["", "Every row that is not ok:", "", "| model | pass | outcome | detail |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['pass']} | {r['outcome']} | {r['detail'][:140].replace('|', '/')} |" for r in rows
              if r["outcome"] != "ok"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="default: every torchvision classification model")
    parser.add_argument("--passes", nargs="+", default=list(TINY))
    parser.add_argument("--data", default="digits")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--name", default="pass_generality")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default benchmarks/results)")
    parser.add_argument("--max-params", type=float, default=150e6,
                        help="skip models with more parameters than this (memory: see the docstring)")
    parser.add_argument("--merge", nargs="+", type=Path, help="write one table from these results (parallel parts)")
    parser.add_argument("--note", default="", help="a line for the Markdown: why these models, how the run went")
    parser.add_argument("--time-limit", type=float, default=0,
                        help="seconds per model and pass; a pass still running then is a 'timeout' row (0: no limit)")
    quiet.add_argument(parser)
    args = parser.parse_args()
    if args.merge:
        write({**merge([json.loads(f.read_text()) for f in args.merge]), "note": args.note}, args.out, args.name)
        return
    guard = quiet.start(args)  # records the load, refuses to write results from a busy machine

    from edgebench.models.data import load_dataset

    dataset = load_dataset(args.data, args.input_size, seed=0)
    data = {"data": args.data, "input_size": args.input_size,
            "command": "python benchmarks/pass_generality.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "rows": [],
            "max_params": args.max_params, "skipped": {}, "note": args.note}
    for model_name in args.models or classification_models():
        params = parameter_count(model_name, dataset.num_classes, args.input_size)
        if params > args.max_params:
            data["skipped"][model_name] = (f"{params / 1e6:.0f} M parameters, over --max-params "
                                           f"{args.max_params / 1e6:.0f} M: several copies per pass would pass 8 GB")
            print(model_name, "skipped", data["skipped"][model_name], flush=True)
            continue
        for pass_name in args.passes:
            with tempfile.TemporaryDirectory() as work:
                result = one(model_name, pass_name, dataset, Path(work), args.time_limit)
            data["rows"].append({"model": model_name, "pass": pass_name, **result})
            print(model_name, pass_name, result["outcome"], result["detail"][:120], flush=True)
    data["load"] = guard.check_writable()
    write(data, args.out, args.name)


def write(data: dict, out: Path, name: str) -> None:
    data = portable(data)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
    (out / f"{name}.md").write_text(markdown(data))
    print(markdown(data))


def merge(parts: list[dict]) -> dict:
    """One result from runs over parts of the family: their rows and skips, every command, and the
    load of the busiest part (with each part's in `part_loads`). A model and pass that a later part
    ran again (after a fix) keeps the later part's row only."""
    busiest = max(parts, key=lambda d: d["load"]["during"]["load1"])
    rows = {(r["model"], r["pass"]): r for d in parts for r in d["rows"]}  # later parts replace earlier rows
    return {**busiest, "command": " & ".join(d["command"] for d in parts),
            "rows": list(rows.values()),
            "skipped": {m: why for d in parts for m, why in d.get("skipped", {}).items()},
            "load": {**busiest["load"], "busy": any(d["load"]["busy"] for d in parts)},
            "part_loads": [d["load"] for d in parts]}


if __name__ == "__main__":
    main()
