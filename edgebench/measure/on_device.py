"""`edgebench measure`: measure, on the device itself, a run folder built on another machine.

The building machine runs `compare` (a full install); the run folder (candidates' artifacts, the
eval data in data/eval.npz, or data/eval-N.npz and reference-N.npz per input shape set of an
ONNX model, and run.json, whose options are the plan) is copied to the device,
which needs only the light install and its runtimes. Each measurement runs in the same isolated
worker (measure/worker.py) that local runs and Ray nodes use. Rows go to their own folder, which
the building machine merges into the run (`edgebench report RUN --merge FOLDER`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgebench.backends.host import device_profile, local_device
from edgebench.core.errors import NotFoundError
from edgebench.core.records import Measurement
from edgebench.core.store import RunStore
from edgebench.measure.environment import fingerprint
from edgebench.measure.identity import label_with_identity
from edgebench.measure.pairing import pair_with_baseline
from edgebench.measure.plan import PlanSettings, plan_measurements
from edgebench.measure.processes import run_interleaved
from edgebench.measure.run_inputs import RunInputs, ShapeSet
from edgebench.measure.scenarios import parse_batch_sizes, parse_scenarios
from edgebench.measure.worker import run_isolated
from edgebench.models.inputs import InputSpec
from edgebench.models.onnx_io import output_fits_classes


@dataclass
class OnDeviceResult:
    out_dir: Path
    device: str
    planned: int
    measurements: list[Measurement]
    identity_warning: Optional[str]


def default_out_dir(run_dir: Path, device: str) -> Path:
    return Path(run_dir) / "on-device" / device


def measure_run(run_dir: Path, device: Optional[str] = None, out_dir: Optional[Path] = None,
                runtimes: Optional[list[str]] = None, scenarios: Optional[list[str]] = None,
                batch_sizes: Optional[list[int]] = None,
                on_result: Callable[[Measurement, int, int], None] = lambda m, done, total: None) -> OnDeviceResult:
    run_dir = Path(run_dir)
    source = RunStore(run_dir)
    info = source.run_info()
    candidates = source.candidates()
    if not info or not candidates or not _eval_paths(run_dir, info):
        raise NotFoundError(f"'{run_dir}' is not a run folder built by `edgebench compare` "
                            f"(it needs run.json, data/eval.npz or data/eval-N.npz, and candidates/)")
    profile = device_profile(device) if device else local_device()
    options = info.get("options", {})
    # The run's own scenarios and batches unless overridden, so the keys are the builder's rows' keys.
    scenarios = parse_scenarios(scenarios or options.get("scenarios"))
    batch_sizes = parse_batch_sizes(",".join(map(str, batch_sizes or options.get("batch_sizes") or [1])))
    settings = PlanSettings(runtimes=runtimes or options.get("runtimes"), timing=options.get("timing") or {},
                            layer_profile=options.get("layer_profile", True),
                            timeout_s=options.get("measure_timeout_s", 600.0), skip_formats=("torch",),
                            clock=options.get("clock", "wall"), processes=int(options.get("processes") or 1),
                            scenarios=tuple(scenarios), batch_sizes=tuple(batch_sizes))
    out_dir = Path(out_dir) if out_dir else default_out_dir(run_dir, profile.name)
    with RunStore(out_dir) as store:
        store.write_run_info({"measured_by": "edgebench measure", "device": profile.name,
                              "device_description": profile.description, "source_run": str(run_dir.resolve()),
                              "model_name": info.get("model_name"), "environment": fingerprint(),
                              "started": time.time()})
        done = store.completed_keys()
        tasks = [t for t in pair_with_baseline([t for c in candidates for t in plan_measurements(
            c, profile, run_dir, settings, profile.description, stored_inputs(run_dir, info, c))]) if t.key not in done]
        warnings: list[str] = []
        measured: list[Measurement] = []

        def keep(result: Measurement) -> None:
            m = label_with_identity(result, profile, where="this machine")
            if m.extra.get("identity_warning"):
                warnings.append(m.extra["identity_warning"])
            store.append(m)
            measured.append(m)
            on_result(m, len(measured), len(tasks))

        run_interleaved(tasks, run_isolated, keep)  # as compare's local executor measures
        return OnDeviceResult(out_dir, profile.name, len(tasks), store.measurements(), warnings[0] if warnings else None)


def _eval_paths(run_dir: Path, info: dict) -> list[Path]:
    """The stored evaluation sets, in shape-set order; empty when one is missing."""
    data = run_dir / "data"
    shape_sets = (info.get("inputs") or {}).get("shape_sets") or []
    if (data / "eval.npz").is_file() and all(s.get("label") is None for s in shape_sets):
        return [data / "eval.npz"]  # a classifier built on a built-in or image dataset
    paths = [data / f"eval-{i}.npz" for i in range(len(shape_sets))]
    return paths if paths and all(p.is_file() for p in paths) else []


def stored_inputs(run_dir: Path, info: dict, candidate) -> RunInputs:
    """The run's inputs as compare planned them, rebuilt from run.json and data/: one shape set of
    a built-in classifier (labels score the candidates that fit them), or every --input-shape set
    of an ONNX model with its FP32 reference, so the keys and shape labels are compare's own and
    `report --merge` lines the rows up."""
    paths = _eval_paths(run_dir, info)
    described = info.get("inputs") or {}
    data = str(described.get("data") or info.get("data") or "")
    if paths == [run_dir / "data" / "eval.npz"]:
        return RunInputs([ShapeSet(None, [], paths[0])], data,
                         labelled=_scores(run_dir, candidate, info.get("classes") or 0))
    sets = []
    for i, (path, described_set) in enumerate(zip(paths, described["shape_sets"])):
        reference = path.with_name(f"reference-{i}.npz")
        sets.append(ShapeSet(described_set["label"], [InputSpec.from_dict(d) for d in described_set["inputs"]], path,
                             reference=reference if reference.is_file() else None))
    quality = str(described.get("quality") or "")
    note = quality.split(":", 1)[1].strip() if quality.startswith("not measured:") else None
    return RunInputs(sets, data, metric=(info.get("options") or {}).get("metric"), quality_note=note)


def _scores(run_dir: Path, candidate, classes: int) -> bool:
    """Whether labels can score this candidate: its outputs are class scores for the dataset."""
    onnx = candidate.artifacts.get("onnx")
    return bool(classes) and (onnx is None or output_fits_classes(run_dir / onnx, classes))
