"""`edgebench gate --baseline-model A --current-model B`: measure both models in one session.

On a shared CI runner the load changes from minute to minute, so a baseline timed yesterday and a
current model timed today differ by more than most regressions. Timing both in alternating blocks
within one process (timing.measure_interleaved) makes background load fall on both alike.

The session runs in its own worker process (`python -m edgebench.gate.interleave`), as every
measurement does (see worker.py): a runtime that crashes or hangs becomes a failed measurement
with its message instead of taking the gate down with it.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgebench.backends import BACKENDS, Placement, availability, create_runner
from edgebench.core.errors import (
    EdgebenchError,
    IncompatibleError,
    NotFoundError,
    NothingToCompareError,
    RuntimeUnavailableError,
    UsageError,
)
from edgebench.core.records import Measurement, _Record, measurement_key
from edgebench.devices.host import host_description
from edgebench.devices.profiles import detected_profile
from edgebench.gate.inputs import GateRun
from edgebench.gate.stats import METRICS
from edgebench.gate.verdict import evaluate
from edgebench.measure.accuracy import evaluate_runner
from edgebench.measure.contention import LoadProbe, assess, sample_load
from edgebench.measure.environment import fingerprint
from edgebench.measure.timing import InterleavedConfig, measure_interleaved, peak_rss_mb
from edgebench.measure.worker import run_module_isolated
from edgebench.models.artifact import Artifact
from edgebench.models.data import load_dataset
from edgebench.models.onnx_io import declared_inputs, load_graph, output_fits_classes

FORMAT_OF_SUFFIX = {".onnx": "onnx", ".xml": "openvino"}


@dataclass(frozen=True)
class InterleavedTask(_Record):
    models: tuple  # absolute paths: (baseline, current)
    backend: str
    processor: str
    precision: str
    device: str
    measured_on: str
    input_shape: tuple  # N x C x H x W of one timed inference
    threads: Optional[int] = None
    timing: dict = field(default_factory=dict)  # InterleavedConfig fields
    eval_data: Optional[str] = None  # .npz with x, y: score both models on it when given
    num_classes: int = 0
    session: str = ""
    timeout_s: float = 600.0


def execute(task: InterleavedTask) -> list[Measurement]:
    """Load both models, time them interleaved, score them. Runs inside the worker."""
    placement = Placement(task.processor, task.precision, task.threads, 1, {})
    runners = []
    for path in task.models:
        runner = create_runner(task.backend)
        runner.load(Path(path), placement)
        runners.append(runner)
    first = Path(task.models[0])
    input_name = declared_inputs(first)[0][0] if first.suffix == ".onnx" else "input"
    if task.eval_data:
        data = np.load(task.eval_data)
        x, y = data["x"], data["y"]
        sample = {input_name: np.ascontiguousarray(x[:1])}
    else:
        x = y = None
        # Fixed synthetic input: latency of these CNNs does not depend on pixel values.
        sample = {input_name: np.random.default_rng(0).standard_normal(task.input_shape).astype(np.float32)}
    before = sample_load(0.25)
    probe = LoadProbe()
    result = measure_interleaved(runners, [sample] * len(runners), InterleavedConfig(**task.timing))
    during = probe.stop()
    out = []
    for i, (runner, path) in enumerate(zip(runners, task.models)):
        accuracy = evaluate_runner(runner, x, y, task.num_classes, input_name=input_name) if x is not None else None
        out.append(Measurement(
            key=measurement_key("model", task.backend, task.processor, task.precision, task.device),
            candidate="model", backend=task.backend, processor=task.processor, precision=task.precision,
            device=task.device, source="measured", status="ok", executed_precision=runner.executed_precision(),
            latency=result.stats[i].to_dict(), accuracy=accuracy.to_dict() if accuracy else None,
            samples_ms=tuple(round(float(s), 5) for s in result.samples[i]), peak_rss_mb=peak_rss_mb(),
            threads=task.threads, runtime_version=runner.runtime_version(), measured_on=task.measured_on,
            extra={"interleaved_session": task.session, "block_iterations": result.block_iterations,
                   "rounds": result.rounds, "artifact_bytes": artifact_bytes(Path(path)),
                   "role": ("baseline", "current")[i] if len(task.models) == 2 else str(i),
                   "contention": assess(before, during, result.samples[i], task.threads)},
            timestamp=time.time()))
        runner.close()
    return out


def artifact_bytes(path: Path) -> int:
    """Bytes on disk of a model file and its sidecars (an IR's .bin, ONNX external data)."""
    return Artifact(path).size_bytes()


def run_isolated(task: InterleavedTask) -> list[Measurement] | str:
    """The two measurements, or the reason the worker failed (crash, hang, error)."""
    outcome = run_module_isolated("edgebench.gate.interleave", {"task": task.to_dict()}, task.timeout_s,
                                  prefix="edgebench-gate-")
    if outcome.answer is None:
        return outcome.error or "worker wrote an empty result"  # error is None only for a JSON null answer
    if "error" in outcome.answer:
        return outcome.answer["error"]
    return [Measurement.from_dict(m) for m in outcome.answer["measurements"]]


def plan_task(baseline: Path, current: Path, backend: str, timing: dict, threads: Optional[int] = None,
              processor: str = "cpu", precision: str = "fp32", input_size: Optional[int] = None,
              eval_data: Optional[Path] = None, num_classes: int = 0) -> InterleavedTask:
    for role, path in (("baseline", baseline), ("current", current)):
        if not Path(path).is_file():
            raise NotFoundError(f"{role} model '{path}' does not exist")
        if Path(path).suffix not in FORMAT_OF_SUFFIX:
            raise UsageError(f"{role} model '{path}' must be an .onnx file or an OpenVINO .xml")
    backend = BACKENDS.canonical(backend)
    avail = availability(backend)
    if not avail.available:
        raise RuntimeUnavailableError(f"runtime '{backend}' is not usable here: {avail.reason}")
    for path in (baseline, current):
        fmt = FORMAT_OF_SUFFIX[Path(path).suffix]
        if fmt not in BACKENDS.get(backend).formats:
            raise UsageError(f"runtime '{backend}' cannot load '{path}' ({fmt})")
    shape_b, shape_c = input_shape(baseline, input_size), input_shape(current, input_size)
    if shape_b != shape_c:
        raise IncompatibleError(f"baseline takes input {list(shape_b)} but current takes {list(shape_c)}")
    device, description = this_device()
    return InterleavedTask(models=(str(Path(baseline).resolve()), str(Path(current).resolve())), backend=backend,
                           processor=processor, precision=precision, device=device, measured_on=description,
                           input_shape=shape_b, threads=threads, timing=dict(timing),
                           eval_data=str(eval_data) if eval_data else None, num_classes=num_classes,
                           session=uuid.uuid4().hex[:12],
                           timeout_s=float(timing.get("time_budget_s", 10.0)) * 3 + 120.0)


def this_device() -> tuple[str, str]:
    """(profile name, description) of this machine, as `backends.host.local_device()` names it,
    without building the host profile (that imports every runtime, torch included: seconds on CI)."""
    found = detected_profile()
    return (found.name, found.description) if found else ("host", host_description())


def input_shape(path: Path, input_size: Optional[int]) -> tuple:
    """N x C x H x W for one inference: from the ONNX graph, or C=3 and --input-size for an IR."""
    if Path(path).suffix != ".onnx":
        if not input_size:
            raise UsageError(f"'{path}' is not ONNX; give --input-size so the gate knows what to feed it")
        return (1, 3, input_size, input_size)
    graph = load_graph(path)
    dims = [d.dim_value or None for d in graph.input[0].type.tensor_type.shape.dim]
    dims = [1] + dims[1:] if dims else dims
    if any(d is None for d in dims[1:]):
        if not input_size or len(dims) != 4:
            raise UsageError(f"'{path}' has a dynamic input shape {dims}; give --input-size")
        dims = [1, dims[1] or 3, input_size, input_size]
    return tuple(int(d) for d in dims if d is not None)  # none is left: dynamic dims were refused or filled above


def gate_models(baseline: Path, current: Path, settings, *, backend: str = "onnxruntime", timing: Optional[dict] = None,
                threads: Optional[int] = None, input_size: Optional[int] = None, data: Optional[str] = None):
    """Measure both models in one interleaved session and return the gate's verdict (a GateResult)."""
    timing = dict(timing or {})
    timing.setdefault("quantile", METRICS[settings.metric] / 100.0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgebench-gate-data-") as tmp:
        eval_path, classes = None, 0
        if data:
            eval_path, classes = _eval_split(data, baseline, current, input_size, Path(tmp))
        task = plan_task(Path(baseline), Path(current), backend, timing, threads=threads, input_size=input_size,
                         eval_data=eval_path, num_classes=classes)
        outcome = run_isolated(task)
    if isinstance(outcome, str):
        raise NothingToCompareError(f"the interleaved measurement failed: {outcome}")
    environment = fingerprint()
    info = {"device": task.device, "measured_on_device": task.device, "measured_on": task.measured_on,
            "environment": environment, "mode": "interleaved", "session": task.session}
    runs = [GateRun(label=str(path), info=info, candidates={}, measurements=[m], environment=environment)
            for path, m in zip((baseline, current), outcome)]
    result = evaluate(runs[0], runs[1], settings)
    if data and not eval_path:
        result.warnings.append(f"accuracy not gated: the models' outputs do not fit the classes of '{data}'")
    result.mode = "interleaved"
    result.gate_s = time.perf_counter() - started
    result.measurements = outcome
    return result


def _eval_split(data: str, baseline: Path, current: Path, input_size: Optional[int], folder: Path):
    """The eval split of `data` at the models' input size, saved for the worker; (None, 0) when the
    models' outputs do not fit the dataset's classes (then only latency and size are gated)."""
    shape = input_shape(baseline, input_size)
    dataset = load_dataset(data, shape[-1])
    if not all(Path(p).suffix == ".onnx" and output_fits_classes(Path(p), dataset.num_classes) for p in (baseline, current)):
        return None, 0
    path = folder / "eval.npz"
    np.savez(path, x=dataset.eval.x, y=dataset.eval.y)
    return path, dataset.num_classes


def _main() -> None:
    request = json.loads(sys.stdin.read())
    task = InterleavedTask.from_dict(request["task"])
    answer: dict[str, Any]
    try:
        answer = {"measurements": [m.to_dict() for m in execute(task)]}
    except EdgebenchError as e:
        answer = {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - the worker's boundary: any error becomes the gate's one-line failure message
        last = traceback.extract_tb(e.__traceback__)[-1]
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        answer = {"error": f"{type(e).__name__}: {msg[:300]} ({Path(last.filename).name}:{last.lineno})"}
    Path(request["result"]).write_text(json.dumps(answer, default=str))


if __name__ == "__main__":
    _main()

