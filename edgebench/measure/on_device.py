"""`edgebench measure`: measure, on the device itself, a run folder built on another machine.

The building machine runs `compare` (a full install); the run folder (candidates' artifacts, the
eval data in data/eval.npz, and run.json, whose options are the plan) is copied to the device,
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
from edgebench.measure.plan import PlanSettings, plan_measurements
from edgebench.measure.run_inputs import RunInputs, ShapeSet
from edgebench.measure.worker import run_isolated
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
                runtimes: Optional[list[str]] = None,
                on_result: Callable[[Measurement, int, int], None] = lambda m, done, total: None) -> OnDeviceResult:
    run_dir = Path(run_dir)
    source = RunStore(run_dir)
    info = source.run_info()
    eval_path = run_dir / "data" / "eval.npz"
    candidates = source.candidates()
    if not info or not eval_path.is_file() or not candidates:
        raise NotFoundError(f"'{run_dir}' is not a run folder built by `edgebench compare` "
                            f"(it needs run.json, data/eval.npz and candidates/)")
    profile = device_profile(device) if device else local_device()
    options = info.get("options", {})
    settings = PlanSettings(runtimes=runtimes or options.get("runtimes"), timing=options.get("timing") or {},
                            layer_profile=options.get("layer_profile", True),
                            timeout_s=options.get("measure_timeout_s", 600.0), skip_formats=("torch",))
    out_dir = Path(out_dir) if out_dir else default_out_dir(run_dir, profile.name)
    with RunStore(out_dir) as store:
        store.write_run_info({"measured_by": "edgebench measure", "device": profile.name,
                              "device_description": profile.description, "source_run": str(run_dir.resolve()),
                              "model_name": info.get("model_name"), "environment": fingerprint(),
                              "started": time.time()})
        done = store.completed_keys()
        tasks = [t for c in candidates
                 for t in plan_measurements(c, profile, run_dir, settings, profile.description,
                                            _built_in_inputs(eval_path, info, _scores(run_dir, c, info.get("classes") or 0)))
                 if t.key not in done]
        warning = None
        for i, task in enumerate(tasks):
            m = label_with_identity(run_isolated(task), profile, where="this machine")
            warning = warning or m.extra.get("identity_warning")
            store.append(m)
            on_result(m, i + 1, len(tasks))
        return OnDeviceResult(out_dir, profile.name, len(tasks), store.measurements(), warning)


def _built_in_inputs(eval_path: Path, info: dict, labelled: bool) -> RunInputs:
    """The stored evaluation set of a run on built-in or image data (one shape set, data/eval.npz).
    Runs with several --input-shape sets store eval-N.npz files and are not measured this way yet."""
    return RunInputs([ShapeSet(None, [], eval_path)], str(info.get("data") or ""), labelled=labelled)


def _scores(run_dir: Path, candidate, classes: int) -> bool:
    """Whether labels can score this candidate: its outputs are class scores for the dataset."""
    onnx = candidate.artifacts.get("onnx")
    return bool(classes) and (onnx is None or output_fits_classes(run_dir / onnx, classes))
