"""A synthetic run folder for tests of reading, reporting and hardening: real records as the store
writes them, without training or timing anything."""
from __future__ import annotations

import numpy as np

from edgebench.core.cache import code_digest
from edgebench.core.records import CandidateInfo, Measurement
from edgebench.core.sessions import start_session
from edgebench.core.store import RunStore, write_json

ENV = {"cpu_model": "Test CPU", "machine": "x86_64", "python": "3.x"}


def latency(ms: float, n: int = 40, seed: int = 0) -> tuple[dict, tuple]:
    samples = np.random.default_rng(seed).normal(ms, ms * 0.02, n).clip(ms * 0.5)
    lat = {"median_ms": float(np.median(samples)), "mean_ms": float(samples.mean()),
           "p90_ms": float(np.percentile(samples, 90)), "p99_ms": float(np.percentile(samples, 99)),
           "std_ms": float(samples.std()), "min_ms": float(samples.min()), "ci_low_ms": ms * 0.99,
           "ci_high_ms": ms * 1.01, "confidence": 0.95, "iterations": n, "warmup_iterations": 2,
           "total_s": float(samples.sum() / 1e3), "stop_reason": "ci-reached"}
    return lat, tuple(float(s) for s in samples)


def measured(candidate: str, ms: float, top1: float = 0.9, backend: str = "onnxruntime", session: int = 1,
             precision: str = "fp32") -> Measurement:
    lat, samples = latency(ms)
    return Measurement(key=f"{candidate}|{backend}|cpu|{precision}|host|b1", candidate=candidate, backend=backend,
                       processor="cpu", precision=precision, device="host", source="measured", status="ok",
                       executed_precision=precision, latency=lat, samples_ms=samples, session=session,
                       accuracy={"top1": top1, "correct": int(top1 * 100), "total": 100, "ci_low": top1 - 0.05,
                                 "ci_high": min(1.0, top1 + 0.05), "split": "eval"})


def make_run(root, names: dict | None = None, options: dict | None = None) -> RunStore:
    """A run folder with a baseline and one candidate measured, and one row of every other outcome."""
    store = RunStore(root)
    store.root.mkdir(parents=True, exist_ok=True)
    info = {"model_name": "tiny-cnn", "device": "host", "measured_on": "this machine", "figures_are_target": True,
            "input_shape": [1, 3, 32, 32], "data": "digits", "options": options or {"epochs": 2.0, "seed": 0}}
    start_session(store, info, ENV, code_digest())
    names = names or {}
    for cid, name in (("baseline", "baseline"), ("small-1", names.get("small-1", "small"))):
        store.candidate_dir(cid).mkdir(parents=True, exist_ok=True)
        write_json(store.candidate_dir(cid) / "candidate.json", CandidateInfo(
            id=cid, name=name, lineage=({"pass": "baseline", "config": {}},)).to_dict())
    store.append(measured("baseline", 2.0, 0.9))
    store.append(measured("small-1", 1.0, 0.89))
    from edgebench.measure.unplanned import build_row, not_run

    cand = CandidateInfo(id="small-1", name="small")
    store.append(not_run(cand, "openvino", "cpu", "fp32", "host", "here", "unavailable",
                         "openvino is not usable here: ModuleNotFoundError; pip install 'edgebench[openvino]'"))
    store.append(not_run(cand, "pytorch", "cpu", "int8", "host", "here", "skipped",
                         "pytorch loads torch; this candidate has onnx"))
    store.append(Measurement(key="small-1|tensorrt|gpu|fp16|host|b1", candidate="small-1", backend="tensorrt",
                             processor="gpu", precision="fp16", device="host", source="measured", status="failed",
                             error="engine build failed: out of memory"))
    store.append(build_row(names.get("recipe", "prune90"), "skipped", "prune: Torch-Pruning cannot prune this "
                           "architecture (ZeroDivisionError: integer division or modulo by zero)", "host"))
    return store
