"""Measurements run in a separate worker process, one at a time.

A runtime that segfaults, aborts, runs out of memory or hangs takes down only its worker; the
parent records a failed Measurement with the message and signal and the run goes on. The worker
is `python -m edgebench.measure.worker`: the task arrives as JSON on stdin and the result is written to
the file named in the task (stdout is left to the runtimes' own chatter).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends import Placement, Runner, create_runner
from edgebench.core.errors import EdgebenchError, IncompatibleError
from edgebench.core.records import AccuracyResult, Measurement, _Record
from edgebench.measure.contention import LoadProbe, assess, sample_load
from edgebench.measure.energy import energy_meter
from edgebench.measure.eval_sets import load_eval_set, load_reference, run_over
from edgebench.measure.pairing import time_against_baseline
from edgebench.measure.processes import run_interleaved
from edgebench.measure.quality import QualityResult, agreement, not_measured, top1, user_metric
from edgebench.measure.scenarios import SCENARIO, batch_feed, run_over_batched
from edgebench.measure.throughput import ThroughputConfig, measure_query_of_requests, measure_throughput
from edgebench.measure.timing import TimingConfig, measure, peak_rss_mb, summarize, timed


@dataclass(frozen=True)
class MeasureTask(_Record):
    key: str
    candidate: str
    backend: str
    artifact: str  # absolute path
    processor: str
    precision: str
    device: str  # profile name the figures describe
    measured_on: str
    eval_data: str  # .npz of stored feeds (measure/eval_sets.py): in:NAME per input, y where labelled
    num_classes: int
    threads: Optional[int] = None
    batch_size: int = 1
    timing: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    layer_profile: bool = True
    score: bool = True  # top-1 on the eval set's labels: only for a model built for them
    timeout_s: float = 600.0
    processes: int = 1  # measure in this many worker processes; the interval spans their spread
    shape: Optional[str] = None  # the shape set's label, recorded on the measurement
    reference: Optional[str] = None  # .npz of FP32 reference outputs on the eval inputs: agreement
    metric: Optional[str] = None  # a user metric (module:function or registered name)
    quality_note: Optional[str] = None  # why quality is not measured (synthetic inputs)
    scenario: str = "single-stream"  # measure/scenarios.py
    pair: Optional[dict] = None  # the baseline to time this candidate against in-process (measure/pairing.py)


def failed(task: MeasureTask, error: str, exit_signal: Optional[int] = None, status: str = "failed") -> Measurement:
    return Measurement(key=task.key, candidate=task.candidate, backend=task.backend, processor=task.processor,
                       precision=task.precision, device=task.device, source="measured", status=status,
                       error=error, exit_signal=exit_signal, measured_on=task.measured_on,
                       batch_size=task.batch_size, threads=task.threads, timestamp=time.time(), shape=task.shape,
                       scenario=task.scenario)


def execute(task: MeasureTask) -> Measurement:
    """Load, time and score one artifact in this process. Runs inside the worker."""
    feed_list, labels = load_eval_set(Path(task.eval_data))
    # A multi-stream query on a model fixed at batch 1 is served as that many batch-1 requests.
    requests = int(task.options.get("query_as_requests") or 0)
    model_batch = 1 if requests else task.batch_size
    sample = batch_feed(feed_list, model_batch)  # a query of batch_size samples, or one of its requests
    runner = create_runner(task.backend)
    placement = Placement(task.processor, task.precision, task.threads, model_batch, dict(task.options))
    runner.check_placement(placement)
    extra: dict = {}
    _, build_s = timed(lambda: runner.prepare(Path(task.artifact), placement))
    if type(runner).prepare is not Runner.prepare:  # an ahead-of-time build (TensorRT engine), reported apart
        extra["build_s"] = build_s
    _, load_s = timed(lambda: runner.load(Path(task.artifact), placement))

    def first_inference() -> object:
        outputs = runner.infer(sample)
        runner.synchronize()
        return outputs  # freed after the clock stops, as before

    _, first_s = timed(first_inference)
    before = sample_load(0.25)  # after loading, so the runtime's own start-up is not counted as load
    meter = energy_meter()
    meter.start()
    probe = LoadProbe()
    own_ms: list[float] = []
    throughput = None
    if requests:
        try:
            streams = runner.throughput_streams()
            stats, samples = measure_query_of_requests(streams, sample, requests, TimingConfig(**task.timing))
        except IncompatibleError as e:
            runner.close()
            return failed(task, f"batch {task.batch_size}: the model's batch is fixed at 1 and the query cannot be "
                                f"served as {requests} batch-1 requests in flight: {e}", status="skipped")
        streams.close()
        extra["served_as"] = f"served as {requests} batch-1 requests in flight ({streams.idiom})"
    elif SCENARIO[task.scenario].throughput:
        try:
            streams = runner.throughput_streams()
        except IncompatibleError as e:
            runner.close()
            return failed(task, str(e), status="skipped")  # a runtime without a throughput mode says so
        throughput, stats, samples = measure_throughput(streams, sample, task.batch_size,
                                                        ThroughputConfig.from_timing(TimingConfig(**task.timing)))
        extra["ranked_by"] = "throughput"
    else:
        stats, samples = measure(runner, sample, TimingConfig(**task.timing), runtime_samples=own_ms)
    extra["contention"] = assess(before, probe.stop(), samples, task.threads)
    if throughput is None:
        profiled = [] if own_ms else runner.profiled_latency_ms(sample, profiled_iterations(stats.median_ms))
        stats, samples = choose_clock(task, stats, samples, own_ms, extra, profiled)
    extra["energy"] = meter.stop(stats.iterations + stats.warmup_iterations, stats.iterations, stats.total_s)
    if task.pair and throughput is None and not requests:
        try:
            extra["paired"] = time_against_baseline(task, runner, sample, task.timing, stats.median_ms)
        except Exception as e:  # noqa: BLE001 - the speedup falls back to the rows' own intervals; the row stays
            extra["paired"] = {"error": f"{type(e).__name__}: {str(e).strip()[:200]}"}
    extra.update(runner.extra_metrics(sample))
    quality = judge(task, runner, feed_list, labels, model_batch)
    accuracy = None
    if quality.metric == "top1":
        accuracy = AccuracyResult(top1=float(quality.value or 0.0), correct=quality.extra["correct"], total=quality.samples,
                                  ci_low=quality.extra["ci_low"], ci_high=quality.extra["ci_high"])
    layers: list[dict] = []
    if task.layer_profile:
        try:
            layers = runner.layer_profile(sample)[:60]
        except Exception as e:  # noqa: BLE001 - a breakdown is a bonus; its failure must not cost the measurement
            layers = [{"layer": "(profiling failed)", "op_type": type(e).__name__, "precision": "?", "time_us": 0.0}]
    executed = runner.executed_precision()
    version = runner.runtime_version()
    runner.close()
    return Measurement(
        key=task.key, candidate=task.candidate, backend=task.backend, processor=task.processor,
        precision=task.precision, device=task.device, source="measured", status="ok",
        executed_precision=executed, latency=stats.to_dict(), accuracy=accuracy.to_dict() if accuracy else None,
        samples_ms=tuple(round(float(s), 5) for s in samples), load_s=load_s, first_inference_ms=first_s * 1e3,
        peak_rss_mb=peak_rss_mb(), batch_size=task.batch_size, threads=task.threads, runtime_version=version,
        measured_on=task.measured_on, node_id=os.environ.get("EDGEBENCH_NODE_ID"), layers=tuple(layers),
        extra=extra, timestamp=time.time(), shape=task.shape, quality=quality.to_dict(), scenario=task.scenario,
        throughput=throughput.to_dict() if throughput else None)


def judge(task: MeasureTask, runner, feed_list: list[dict], labels, batch: Optional[int] = None) -> QualityResult:
    """The task's quality figure: top-1 on labels made for the model, a user metric, agreement
    with the FP32 reference, or not measured with the reason; the model is run `batch` samples at a
    time (default: the task's batch size)."""
    batch = task.batch_size if batch is None else batch
    if task.quality_note:
        return not_measured(task.quality_note)
    if not (task.score and labels is not None) and not task.metric and not task.reference:
        return not_measured("no labels that fit the model and no FP32 reference")
    outputs = run_over(runner, feed_list) if batch == 1 else run_over_batched(runner, feed_list, batch)
    if task.score and labels is not None:
        if outputs[0].reshape(len(labels), -1).shape[1] != task.num_classes:
            raise IncompatibleError(f"model output shape {list(outputs[0].shape[1:])} does not fit the "
                                    f"dataset's {task.num_classes} classes")
        return top1(outputs, labels, task.num_classes)
    if task.metric:
        return user_metric(task.metric, outputs, labels)
    if not task.reference:
        return not_measured("no FP32 reference outputs were stored for this measurement")
    reference, names = load_reference(Path(task.reference))
    return agreement(outputs, reference, names)


def profiled_iterations(wall_median_ms: float, seconds: float = 0.5) -> int:
    """Runs of a separate profiled pass: about `seconds` of unprofiled time, between 10 and 100
    (the profiler itself slows each run, so the pass takes a few times longer)."""
    return int(min(100, max(10, seconds * 1e3 / max(wall_median_ms, 1e-3))))


def choose_clock(task: MeasureTask, stats, samples, own_ms: list[float], extra: dict,
                 profiled_ms: Sequence[float] = ()):
    """Record the runtime's own clock beside the wall clock, and rank by the one asked for
    (task.options["clock"]: "wall", the default, or "runtime" where the runtime keeps one per
    timed call). A runtime whose own clock is only its profiler (`profiled_ms`, from a separate
    instrumented pass) has it recorded with its basis and ratio to the wall median, and stays
    ranked by wall: the profiler's own cost is part of that figure."""
    extra["ranked_by"] = "wall"
    if not own_ms and profiled_ms:
        profiled = np.asarray(profiled_ms, dtype=np.float64)
        profiled_stats = summarize(profiled, TimingConfig(**task.timing), 0, 0.0, "profiled-pass")
        ratio = profiled_stats.median_ms / stats.median_ms
        extra["runtime_clock"] = {
            "source": f"{task.backend} profiler's own duration of each run, from a separate profiled pass of "
                      f"{len(profiled)} runs after the timed calls (not the timed calls)",
            "basis": "separate profiled pass", "to_wall_median": ratio, **profiled_stats.to_dict()}
        if task.options.get("clock") == "runtime":
            extra["clock_note"] = (f"ranked by wall although the runtime clock was asked for: {task.backend} keeps "
                                   f"no clock but its profiler, which ran x{ratio:.2f} the wall median here")
        return stats, samples
    if not own_ms:
        return stats, samples
    own = np.asarray(own_ms, dtype=np.float64)
    runtime_stats = summarize(own, TimingConfig(**task.timing), stats.warmup_iterations, stats.total_s,
                              stats.stop_reason)
    extra["runtime_clock"] = {"source": f"{task.backend} runtime's own per-inference latency",
                              "basis": "per timed call", **runtime_stats.to_dict()}
    if task.options.get("clock") == "runtime":
        extra["wall_clock"] = stats.to_dict()
        extra["ranked_by"] = "runtime"
        return runtime_stats, own
    return stats, samples


@dataclass(frozen=True)
class WorkerOutcome:
    """What came back from an isolated worker: its JSON answer, or why there is none."""
    answer: Optional[dict] = None
    error: Optional[str] = None
    exit_signal: Optional[int] = None


def run_module_isolated(module: str, request: dict, timeout_s: float, prefix: str = "edgebench-worker-") -> WorkerOutcome:
    """Run `python -m module` in a fresh interpreter with `request` on stdin; the module writes its
    answer as JSON to the path in request["result"]. Crashes, hangs and exits become `error`."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        result_path = Path(tmp) / "result.json"
        payload = json.dumps({**request, "result": str(result_path)})
        # The worker must import this same edgebench, wherever the parent was started from.
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
        try:
            proc = subprocess.run([sys.executable, "-m", module], input=payload.encode(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return WorkerOutcome(error=f"timed out after {timeout_s:.0f} s (worker killed)", exit_signal=signal.SIGKILL)
        if result_path.is_file():
            try:
                return WorkerOutcome(answer=json.loads(result_path.read_text()))
            except json.JSONDecodeError:
                pass
        stderr = proc.stderr.decode(errors="replace").strip().splitlines()
        last = stderr[-1][:300] if stderr else ""
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return WorkerOutcome(error=f"runtime crashed with {name}" + (f": {last}" if last else ""),
                                 exit_signal=-proc.returncode)
        return WorkerOutcome(error=f"worker exited with code {proc.returncode}: {last or 'no output'}")


def run_isolated(task: MeasureTask) -> Measurement:
    """Run `execute(task)` in a fresh interpreter (in `task.processes` of them, one after another,
    merged); crashes and hangs become failed measurements."""
    if task.processes > 1:
        merged: list[Measurement] = []
        run_interleaved([task], run_isolated, merged.append)
        return merged[0]
    outcome = run_module_isolated("edgebench.measure.worker", {"task": task.to_dict()}, task.timeout_s)
    if outcome.answer is not None:
        try:
            return Measurement.from_dict(outcome.answer)
        except TypeError:
            return failed(task, "worker wrote an unreadable result")
    # error is None only when the worker's answer was JSON null
    return failed(task, outcome.error or "worker wrote an empty result", exit_signal=outcome.exit_signal)


def die_with_parent() -> None:
    """Linux: have the kernel kill this worker if the process that started it dies (kill -9 of a
    run), so an orphaned measurement does not keep loading the machine."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _main() -> None:
    die_with_parent()
    request = json.loads(sys.stdin.read())
    task = MeasureTask.from_dict(request["task"])
    try:
        result = execute(task)
    except EdgebenchError as e:
        result = failed(task, str(e))
    except Exception as e:  # noqa: BLE001 - the worker's boundary: any error becomes a failed row with its message
        last = traceback.extract_tb(e.__traceback__)[-1]
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = failed(task, f"{type(e).__name__}: {msg[:300]} ({Path(last.filename).name}:{last.lineno})")
    Path(request["result"]).write_text(json.dumps(result.to_dict(), default=str))


if __name__ == "__main__":
    _main()
