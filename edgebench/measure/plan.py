"""Which measurements a candidate gets on a device: one per input shape set x runtime x
processor x precision that the device's profile supports, the runtime is available for, and the
candidate has an artifact for. `compare` plans with it on the building machine and `edgebench
measure` on the device."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgebench.backends import BACKENDS, availability
from edgebench.core.records import CandidateInfo, Measurement, measurement_key
from edgebench.core.signing import trusted_sha256
from edgebench.devices.profiles import DeviceProfile
from edgebench.measure import unplanned
from edgebench.measure.run_inputs import RunInputs, ShapeSet
from edgebench.measure.scenarios import (
    MULTI_STREAM_SAMPLES,
    SCENARIO,
    batch_decline,
    batched_shapes,
    planned_batches,
    serve_as_requests,
)
from edgebench.measure.worker import MeasureTask


@dataclass(frozen=True)
class PlanSettings:
    runtimes: Optional[list[str]] = None  # None: every runtime the device supports (opt-in ones only by name)
    timing: dict = field(default_factory=dict)
    layer_profile: bool = True
    timeout_s: float = 600.0
    clock: str = "wall"  # which clock ranks: wall | runtime
    processes: int = 1  # worker processes per measurement; the interval spans their spread
    skip_formats: tuple[str, ...] = ()  # `measure` leaves out torch files: their signature is the builder's
    scenarios: tuple[str, ...] = ("single-stream",)  # measure/scenarios.py
    batch_sizes: tuple[int, ...] = (1,)
    streams: Optional[int] = None  # offline: requests in flight where the runtime does not choose (None: a default)


def plan_measurements(info: CandidateInfo, profile: DeviceProfile, run_dir: Path, settings: PlanSettings,
                      measured_on: str, inputs: RunInputs, available=availability,
                      not_run: Optional[list[Measurement]] = None) -> list[MeasureTask]:
    """The measurements to run; what is planned but cannot run (no runner, runtime unavailable,
    no loadable artifact) goes into `not_run` as rows with the reason."""
    not_run = [] if not_run is None else not_run
    return [t for scenario in settings.scenarios for batch in planned_batches(scenario, list(settings.batch_sizes))
            for shape_set in inputs.sets
            for t in _plan_shape(info, profile, run_dir, settings, measured_on, inputs, shape_set, available, not_run,
                                 scenario, batch)]


def default_streams(threads: Optional[int]) -> int:
    """Requests in flight for a runtime that leaves the choice to us: two at least (else nothing
    overlaps), about one per two cores, each stream getting its share of the threads."""
    return max(2, (threads or 2) // 2)


def _plan_shape(info: CandidateInfo, profile: DeviceProfile, run_dir: Path, settings: PlanSettings,
                measured_on: str, inputs: RunInputs, shape_set: ShapeSet, available,
                not_run: list[Measurement], scenario: str = "single-stream", batch: int = 1) -> list[MeasureTask]:
    tasks = []
    wanted = [BACKENDS.canonical(r) for r in settings.runtimes] if settings.runtimes else None

    def row(runtime: str, processor_name: str, precisions: list[str], status: str, reason: str) -> None:
        for precision in precisions or [info.precision]:
            not_run.append(unplanned.not_run(info, runtime, processor_name, precision, profile.name, measured_on,
                                             status, reason, shape=shape_set.label, batch_size=batch,
                                             scenario=scenario))

    for processor_name, processor in profile.processors.items():
        for runtime in processor.runtimes:
            if runtime not in BACKENDS:
                if not wanted:
                    row(runtime, processor_name, [], "unavailable", f"edgebench has no runner for {runtime}")
                continue
            if (wanted and runtime not in wanted) or (not wanted and BACKENDS.get(runtime).opt_in):
                continue
            runner = BACKENDS.get(runtime)
            precisions = runner.plan_precisions(info.precision, processor.precisions)
            avail = available(runtime)
            if not avail.available:
                row(runtime, processor_name, precisions, "unavailable",
                    unplanned.unavailable_reason(runtime, avail, runner.extra))
                continue
            if processor_name not in avail.processors:
                row(runtime, processor_name, precisions, "unavailable",
                    f"{runtime} sees no {processor_name} here (it sees {', '.join(avail.processors) or 'none'})")
                continue
            fmt = runner.deployed_format(info.artifacts)
            if fmt in settings.skip_formats:
                continue
            if fmt is None:
                row(runtime, processor_name, precisions, "skipped", f"{runtime} loads {', '.join(runner.formats)}; "
                    f"this candidate has {', '.join(info.artifacts) or 'no artifact'}")
                continue
            artifact = run_dir / info.artifacts[fmt]
            onnx = run_dir / info.artifacts["onnx"] if fmt in ("onnx", "openvino") and "onnx" in info.artifacts else None
            declined = batch_decline(batch, shape_set.input_shapes, onnx)
            as_requests = bool(declined) and serve_as_requests(scenario, shape_set.input_shapes, onnx)
            if as_requests and not runner.has_throughput_mode():
                declined = (f"{declined}; {runtime} has no throughput mode to serve the query as {batch} batch-1 "
                            "requests in flight")
                as_requests = False
            if declined and not as_requests:
                row(runtime, processor_name, precisions, "skipped", f"batch {batch}: {declined}")
                continue
            options: dict[str, object] = {"sha256": trusted_sha256(artifact)} if fmt == "torch" else {}
            if settings.clock != "wall":
                options["clock"] = settings.clock
            if shape_set.label:
                options["input_shapes"] = batched_shapes(shape_set.input_shapes, 1 if as_requests else batch)
            if as_requests:  # the row keeps batch 8 (its key is a multi-stream query's); the model runs at 1
                options.update(hint="throughput", streams=MULTI_STREAM_SAMPLES, query_as_requests=MULTI_STREAM_SAMPLES)
            elif SCENARIO[scenario].throughput:
                options["hint"] = "throughput"
                options["streams"] = settings.streams or default_streams(profile.threads)
            for precision in precisions:
                key = measurement_key(info.id, runtime, processor_name, precision, profile.name, batch,
                                      shape_set.label, scenario)
                tasks.append(MeasureTask(
                    key=key, candidate=info.id, backend=runtime, artifact=str(artifact), options=options,
                    processor=processor_name, precision=precision, device=profile.name, measured_on=measured_on,
                    eval_data=str(shape_set.eval_path), num_classes=info.num_classes or 0, threads=profile.threads,
                    timing=dict(settings.timing), layer_profile=settings.layer_profile and runtime != "pytorch",
                    timeout_s=settings.timeout_s * max(1, settings.processes), score=inputs.labelled,
                    processes=settings.processes, shape=shape_set.label,
                    reference=str(shape_set.reference) if shape_set.reference else None, metric=inputs.metric,
                    quality_note=inputs.quality_note, batch_size=batch, scenario=scenario))
    return tasks
