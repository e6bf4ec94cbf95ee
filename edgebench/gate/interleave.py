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
from dataclasses import dataclass, field, replace
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
from edgebench.measure.eval_sets import run_over
from edgebench.measure.quality import agreement
from edgebench.measure.timing import InterleavedConfig, measure_interleaved, peak_rss_mb
from edgebench.measure.worker import run_module_isolated
from edgebench.models.artifact import Artifact
from edgebench.models.data import load_dataset
from edgebench.models.input_data import feeds
from edgebench.models.inputs import InputSpec, parse_input_shapes, resolve_input_specs
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
    eval_data: Optional[str] = None  # .npz with one "x:NAME" per input (and y for top-1): score both models on it
    num_classes: int = 0
    quality: str = "top1"  # top1: both on the labels y | agreement: the current model's outputs against the baseline's
    output_names: tuple = ()  # the baseline's declared outputs, for naming agreement rows
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
        x = {s.name: data[f"x:{s.name}"] for s in specs}
        y = data["y"] if "y" in data.files else None
        sample = {name: np.ascontiguousarray(a[:1]) for name, a in x.items()}
    else:
        # Fixed synthetic input: latency of these models does not depend on the values fed.
        sample = next(feeds("random", specs, 1))
    before = sample_load(0.25)
    probe = LoadProbe()
    result = measure_interleaved(runners, [sample] * len(runners), InterleavedConfig(**task.timing))
    during = probe.stop()
    qualities: list[Optional[dict]] = [None] * len(runners)
    if x is not None and task.quality == "agreement" and len(runners) == 2:
        qualities[1] = baseline_agreement(runners, x, list(task.output_names)).to_dict()
    out = []
    for i, (runner, path) in enumerate(zip(runners, task.models)):
        accuracy = evaluate_runner(runner, x, y, task.num_classes) \
            if x is not None and y is not None and task.quality == "top1" else None
        out.append(Measurement(
            key=measurement_key("model", task.backend, task.processor, task.precision, task.device),
            candidate="model", backend=task.backend, processor=task.processor, precision=task.precision,
            device=task.device, source="measured", status="ok", executed_precision=runner.executed_precision(),
            latency=result.stats[i].to_dict(), accuracy=accuracy.to_dict() if accuracy else None,
            quality=qualities[i],
            samples_ms=tuple(round(float(s), 5) for s in result.samples[i]), peak_rss_mb=peak_rss_mb(),
            threads=task.threads, runtime_version=runner.runtime_version(), measured_on=task.measured_on,
            extra={"interleaved_session": task.session, "block_iterations": result.block_iterations,
                   "rounds": result.rounds, "artifact_bytes": artifact_bytes(Path(path)),
                   "role": ("baseline", "current")[i] if len(task.models) == 2 else str(i),
                   "contention": assess(before, during, result.samples[i], task.threads)},
            timestamp=time.time()))
        runner.close()
    return out


def baseline_agreement(runners: list, x: dict[str, np.ndarray], names: list[str]):
    """The current model's outputs (runners[1]) against the baseline's (runners[0]) on the same
    samples, with the per-output metrics compare uses against FP32 (measure.quality.agreement)."""
    count = min(len(a) for a in x.values())
    feed_list = [{name: np.ascontiguousarray(a[i:i + 1]) for name, a in x.items()} for i in range(count)]
    reference, outputs = run_over(runners[0], feed_list), run_over(runners[1], feed_list)
    result = agreement(outputs, reference, names)
    return replace(result, description=result.description.replace("with FP32", "with the baseline model"),
                   extra={**result.extra, "reference": "baseline"})


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
              eval_data: Optional[Path] = None, num_classes: int = 0, quality: str = "top1",
              input_shapes: Optional[dict] = None) -> InterleavedTask:
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
    specs_b, specs_c = model_inputs(baseline, input_size, input_shapes), model_inputs(current, input_size, input_shapes)
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
                           quality=quality, output_names=output_names(baseline), session=uuid.uuid4().hex[:12],
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


def model_inputs(path: Path, input_size: Optional[int], asked: Optional[dict] = None) -> list[InputSpec]:
    """The inputs one inference feeds: every declared input of an ONNX model (dynamic dims from
    --input-shape, or of a single image input from --input-size), or one image input named "input"
    for an IR (its shape from an unnamed --input-shape or --input-size)."""
    asked = asked or {}
    if any(len(shapes) > 1 for shapes in asked.values()):
        raise UsageError("the gate times one shape per input: give --input-shape NAME=DIMS once per input, "
                         "without comma-separated alternatives")
    if Path(path).suffix != ".onnx":
        if not asked:
            return [InputSpec("input", input_shape(path, input_size))]
        if set(asked) != {None}:
            raise UsageError(f"'{path}' is not ONNX, so its input names are unknown here: give one --input-shape "
                             f"without a name")
        return [InputSpec("input", asked[None][0])]
    declared = declared_inputs(path)
    if len(declared) == 1 and not asked:
        name, _dims, dtype = declared[0]
        return [InputSpec(name, input_shape(path, input_size), dtype)]
    return resolve_input_specs(declared, asked, input_size)[0]


def output_names(path: Path) -> tuple:
    """Declared output names of an ONNX model (for naming agreement rows); none for an IR."""
    return tuple(o[0] for o in declared_outputs(path)) if Path(path).suffix == ".onnx" else ()


def _show_inputs(specs: list[InputSpec]) -> str:
    return ", ".join(f"{s.name} {list(s.shape)}" for s in specs)


QUALITY_MODES = ("auto", "top1", "agreement")


def gate_models(baseline: Path, current: Path, settings, *, backend: str = "onnxruntime", timing: Optional[dict] = None,
                threads: Optional[int] = None, input_size: Optional[int] = None, data: Optional[str] = None,
                quality: str = "auto", input_shapes: Optional[list[str]] = None):
    """Measure both models in one interleaved session and return the gate's verdict (a GateResult).

    Quality, with --data: top-1 of both on labels that fit the models (`top1`), or the current
    model's agreement with the baseline's outputs on the same inputs (`agreement`); `auto` takes
    top-1 where there are labels that fit and agreement otherwise."""
    if quality not in QUALITY_MODES:
        raise UsageError(f"--quality must be one of {', '.join(QUALITY_MODES)}, not '{quality}'")
    if quality != "auto" and not data:
        raise UsageError(f"--quality {quality} needs --data (the inputs both models are run on)")
    asked = parse_input_shapes(list(input_shapes or []))
    timing = dict(timing or {})
    timing.setdefault("quantile", METRICS[settings.metric] / 100.0)
    started = time.perf_counter()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgebench-gate-data-") as tmp:
        eval_path, classes, kind = None, 0, "top1"
        if data:
            eval_path, classes, kind, notes = _eval_split(data, baseline, current, input_size, asked, quality,
                                                          Path(tmp))
        task = plan_task(Path(baseline), Path(current), backend, timing, threads=threads, input_size=input_size,
                         eval_data=eval_path, num_classes=classes, quality=kind, input_shapes=asked)
        outcome = run_isolated(task)
    if isinstance(outcome, str):
        raise NothingToCompareError(f"the interleaved measurement failed: {outcome}")
    environment = fingerprint()
    info = {"device": task.device, "measured_on_device": task.device, "measured_on": task.measured_on,
            "environment": environment, "mode": "interleaved", "session": task.session}
    runs = [GateRun(label=str(path), info=info, candidates={}, measurements=[m], environment=environment)
            for path, m in zip((baseline, current), outcome)]
    result = evaluate(runs[0], runs[1], settings)
    result.warnings.extend(notes)
    result.mode = "interleaved"
    result.gate_s = time.perf_counter() - started
    result.measurements = outcome
    return result


MAX_NPZ_SAMPLES = 10_000  # an accuracy gate wants every labelled sample a CI job can afford; this bounds memory


def _eval_split(data: str, baseline: Path, current: Path, input_size: Optional[int], asked: dict, quality: str,
                folder: Path) -> tuple[Optional[Path], int, str, list[str]]:
    """The eval samples of `data` for the models' inputs, saved for the worker, as (path, classes,
    "top1" or "agreement", warnings); path None when quality cannot be gated (then only latency and
    size are, and a warning says why)."""
    specs = model_inputs(baseline, input_size, asked)
    if data.startswith("npz:"):
        x, y = _npz_samples(Path(data.split(":", 1)[1]).expanduser(), specs)
        if y is None and quality == "top1":
            raise UsageError(f"--quality top1 needs labels: '{data}' has no 'targets' array (one label per sample)")
        classes = _classes(baseline, y) if y is not None else 0
    else:
        if len(specs) > 1:
            raise UsageError(f"the models have inputs {', '.join(s.name for s in specs)}: give --data npz:FILE with "
                             f"one array per input name (and 'targets' to gate top-1)")
        dataset = load_dataset(data, specs[0].shape[-1])
        x, y, classes = {specs[0].name: dataset.eval.x}, dataset.eval.y, dataset.num_classes
    notes: list[str] = []
    arrays: dict[str, Any] = {f"x:{name}": a for name, a in x.items()}  # Any: numpy's stubs type **kwds as bool
    if y is not None and quality != "agreement":
        fits = all(Path(p).suffix == ".onnx" and output_fits_classes(Path(p), classes) for p in (baseline, current))
        if fits:
            path = folder / "eval.npz"
            np.savez(path, y=y, **arrays)
            return path, classes, "top1", notes
        why = f"the models' outputs do not fit the {classes} classes of '{data}'"
        if quality == "top1":
            return None, 0, "top1", [f"accuracy not gated: {why}"]
        notes.append(f"top-1 not gated ({why}); gating agreement with the baseline's outputs instead")
    path = folder / "eval.npz"
    np.savez(path, **arrays)
    return path, 0, "agreement", notes


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
        raise UsageError(f"quality is gated one sample per inference; input {', '.join(map(repr, unbatched))} has no "
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

