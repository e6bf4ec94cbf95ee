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
    CorruptInputError,
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
from edgebench.models.input_data import feeds
from edgebench.models.inputs import InputSpec, resolve_input_specs
from edgebench.models.onnx_io import declared_inputs, declared_outputs, load_graph, output_fits_classes

FORMAT_OF_SUFFIX = {".onnx": "onnx", ".xml": "openvino"}


@dataclass(frozen=True)
class InterleavedTask(_Record):
    models: tuple  # absolute paths: (baseline, current)
    backend: str
    processor: str
    precision: str
    device: str
    measured_on: str
    input_shape: tuple  # N x C x H x W of one timed inference (the first input's shape)
    inputs: tuple = ()  # (name, shape, dtype) per input of an ONNX model; empty: one input named "input"
    threads: Optional[int] = None
    timing: dict = field(default_factory=dict)  # InterleavedConfig fields
    eval_data: Optional[str] = None  # .npz with y and one "x:NAME" per input: score both models on it when given
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
    specs = [InputSpec(name, tuple(shape), dtype) for name, shape, dtype in task.inputs] \
        or [InputSpec("input", task.input_shape)]
    x: Optional[dict[str, np.ndarray]] = None
    y = None
    if task.eval_data:
        data = np.load(task.eval_data)
        x, y = {s.name: data[f"x:{s.name}"] for s in specs}, data["y"]
        sample = {name: np.ascontiguousarray(a[:1]) for name, a in x.items()}
    else:
        # Fixed synthetic input: latency of these models does not depend on the values fed.
        sample = next(feeds("random", specs, 1))
    before = sample_load(0.25)
    probe = LoadProbe()
    result = measure_interleaved(runners, [sample] * len(runners), InterleavedConfig(**task.timing))
    during = probe.stop()
    out = []
    for i, (runner, path) in enumerate(zip(runners, task.models)):
        accuracy = evaluate_runner(runner, x, y, task.num_classes) if x is not None and y is not None else None
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
    specs_b, specs_c = model_inputs(baseline, input_size), model_inputs(current, input_size)
    if [(s.name, s.shape) for s in specs_b] != [(s.name, s.shape) for s in specs_c]:
        raise IncompatibleError(f"baseline takes inputs {_show_inputs(specs_b)} but current takes "
                                f"{_show_inputs(specs_c)}")
    shape_b = specs_b[0].shape
    device, description = this_device()
    return InterleavedTask(models=(str(Path(baseline).resolve()), str(Path(current).resolve())), backend=backend,
                           processor=processor, precision=precision, device=device, measured_on=description,
                           input_shape=shape_b, threads=threads,
                           inputs=tuple((s.name, s.shape, s.dtype) for s in specs_b), timing=dict(timing),
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


def model_inputs(path: Path, input_size: Optional[int]) -> list[InputSpec]:
    """The inputs one inference feeds: every declared input of an ONNX model (dynamic dims of a
    single image input filled from --input-size), or one image input named "input" for an IR."""
    if Path(path).suffix != ".onnx":
        return [InputSpec("input", input_shape(path, input_size))]
    declared = declared_inputs(path)
    if len(declared) == 1:
        name, _dims, dtype = declared[0]
        return [InputSpec(name, input_shape(path, input_size), dtype)]
    return resolve_input_specs(declared, {}, input_size)[0]


def _show_inputs(specs: list[InputSpec]) -> str:
    return ", ".join(f"{s.name} {list(s.shape)}" for s in specs)


def gate_models(baseline: Path, current: Path, settings, *, backend: str = "onnxruntime", timing: Optional[dict] = None,
                threads: Optional[int] = None, input_size: Optional[int] = None, data: Optional[str] = None):
    """Measure both models in one interleaved session and return the gate's verdict (a GateResult)."""
    timing = dict(timing or {})
    timing.setdefault("quantile", METRICS[settings.metric] / 100.0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgebench-gate-data-") as tmp:
        eval_path, classes, why_not = None, 0, ""
        if data:
            eval_path, classes, why_not = _eval_split(data, baseline, current, input_size, Path(tmp))
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
        result.warnings.append(f"accuracy not gated: {why_not}")
    result.mode = "interleaved"
    result.gate_s = time.perf_counter() - started
    result.measurements = outcome
    return result


MAX_NPZ_SAMPLES = 10_000  # an accuracy gate wants every labelled sample a CI job can afford; this bounds memory


def _eval_split(data: str, baseline: Path, current: Path, input_size: Optional[int], folder: Path):
    """The eval samples of `data` for the models' inputs, saved for the worker as (path, classes, "");
    (None, 0, why) when accuracy cannot be gated (then only latency and size are)."""
    specs = model_inputs(baseline, input_size)
    if data.startswith("npz:"):
        x, y = _npz_samples(Path(data.split(":", 1)[1]).expanduser(), specs)
        if y is None:
            return None, 0, f"'{data}' has no 'targets' array (one label per sample) to score top-1 on"
        classes = _classes(baseline, y)
    else:
        if len(specs) > 1:
            raise UsageError(f"the models have inputs {', '.join(s.name for s in specs)}: give --data npz:FILE with "
                             f"one array per input name (and 'targets' to gate accuracy)")
        dataset = load_dataset(data, specs[0].shape[-1])
        x, y, classes = {specs[0].name: dataset.eval.x}, dataset.eval.y, dataset.num_classes
    if not all(Path(p).suffix == ".onnx" and output_fits_classes(Path(p), classes) for p in (baseline, current)):
        return None, 0, f"the models' outputs do not fit the {classes} classes of '{data}'"
    path = folder / "eval.npz"
    arrays: dict[str, Any] = {"y": y, **{f"x:{name}": a for name, a in x.items()}}  # Any: numpy's stubs type **kwds as bool
    np.savez(path, **arrays)
    return path, classes, ""


def _npz_samples(path: Path, specs: list[InputSpec]) -> tuple[dict[str, np.ndarray], Optional[np.ndarray]]:
    """One stacked array per input from an .npz keyed by input name (read by compare's loader), and
    its 'targets' when it has them. Any other array is refused: a misnamed one would otherwise be
    silently ignored while the gate scored something else."""
    if path.is_file():
        try:
            with np.load(path) as arrays:
                keys = list(arrays)
        except (ValueError, OSError) as e:
            raise CorruptInputError(f"cannot read '{path}': {e}") from None
        names = [s.name for s in specs]
        missing = [n for n in names if n not in keys]
        extra = [k for k in keys if k not in names and k != "targets"]
        if missing or extra:
            raise UsageError(f"'{path}' must hold one array per model input ({', '.join(map(repr, names))}) and "
                             f"optionally 'targets': missing {', '.join(map(repr, missing)) or 'none'}, extra "
                             f"{', '.join(map(repr, extra)) or 'none'}")
    unbatched = [s.name for s in specs if not s.shape or s.shape[0] != 1]
    if unbatched:
        raise UsageError(f"accuracy is gated one sample per inference; input {', '.join(map(repr, unbatched))} has no "
                         f"leading batch dimension of 1")
    samples = list(feeds(f"npz:{path}", specs, MAX_NPZ_SAMPLES))  # not-found and shape errors come from here
    # Joined along the batch dimension: [samples, ...], as the built-in datasets' arrays are.
    x = {s.name: np.concatenate([f[s.name] for f in samples]) for s in specs}
    with np.load(path) as arrays:
        y = np.asarray(arrays["targets"])[:len(samples)].astype(np.int64) if "targets" in arrays else None
    return x, y


def _classes(model: Path, targets: np.ndarray) -> int:
    """Classes of the model's first output where declared, else as many as the labels name."""
    if Path(model).suffix == ".onnx":
        dims = declared_outputs(model)[0][1]
        if len(dims) == 2 and isinstance(dims[1], int) and dims[1] > 0:
            return dims[1]
    return int(targets.max()) + 1 if len(targets) else 0


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

