"""`compare`: candidates x runtimes x device, resumable.

Each step stores its result before the next starts (candidates in their folders, measurements as
JSON lines), so a failure or a kill later loses nothing, and rerunning the same command picks up
where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from edgebench import __version__
from edgebench.backends import BACKENDS, availability
from edgebench.backends.host import device_profile, local_device
from edgebench.compress import DEFAULT_RECIPES, instantiate, load_recipe, validate_recipes
from edgebench.compress.base import parse_budget
from edgebench.compress.builder import BaselineOptions, CandidateBuilder, build_baseline
from edgebench.core.atomic import atomic_path
from edgebench.core.cache import content_key
from edgebench.core.errors import EdgebenchError, IncompatibleError, UsageError
from edgebench.core.records import CandidateInfo, Measurement, measurement_key
from edgebench.core.sessions import check_run_name, start_session
from edgebench.core.signing import trusted_sha256
from edgebench.core.store import RunStore
from edgebench.devices.profiles import DeviceProfile
from edgebench.estimate.device_rows import add_estimates
from edgebench.execute.local import make_executor
from edgebench.measure import unplanned
from edgebench.measure.environment import fingerprint
from edgebench.measure.timing import TimingConfig
from edgebench.measure.unplanned import build_key, build_row
from edgebench.measure.worker import MeasureTask
from edgebench.models.data import load_dataset
from edgebench.models.onnx_io import output_fits_classes
from edgebench.models.zoo import resolve_model
from edgebench.report import render_run


class Reporter(Protocol):
    def stage(self, name: str) -> None: ...
    def progress(self, label: str, done: int, total: int) -> None: ...
    def measured(self, m: Measurement) -> None: ...
    def note(self, text: str) -> None: ...


class SilentReporter:
    def stage(self, name): pass
    def progress(self, label, done, total): pass
    def measured(self, m): pass
    def note(self, text): pass


@dataclass
class CompareOptions:
    model: str
    device: str = "host"
    data: str = "mnist"
    input_size: int = 64
    weights: Optional[str] = None
    pretrained: bool = False
    trust_checkpoint: bool = False
    partial_weights: bool = False  # accept --weights with missing or unexpected keys (said in the report)
    recipes: Optional[list[str]] = None  # None: the defaults
    runtimes: Optional[list[str]] = None  # None: every runtime the device supports and this machine has
    epochs: float = 2.0
    budget: str = "quick"  # training budget of the passes that fine-tune: quick | standard | long | multiplier
    seed: int = 0
    runs_dir: Path = Path("runs")
    run_name: Optional[str] = None
    timing: TimingConfig = field(default_factory=TimingConfig)
    measure_timeout_s: float = 600.0
    layer_profile: bool = True
    executor: str = "local"
    executor_options: dict = field(default_factory=dict)

    def run_id(self, model_name: str, device: str) -> str:
        if self.run_name:
            return check_run_name(self.run_name)
        settings = {k: v for k, v in asdict(self).items() if k not in ("runs_dir", "run_name", "executor",
                                                                          "executor_options", "measure_timeout_s")
                    and not (k == "partial_weights" and not v)}  # a new option at its default keeps old run ids
        return f"{model_name}-{device}-{content_key(settings)[:8]}"


@dataclass
class CompareResult:
    run_dir: Path
    candidates: list[CandidateInfo]
    measurements: list[Measurement]
    skipped_recipes: dict[str, str]
    dropped: dict[str, str] = field(default_factory=dict)  # stored records left out on reading, and why


def measurement_target(asked: DeviceProfile, executor=None) -> tuple[DeviceProfile, bool]:
    """The profile to measure on, and whether it is the device that was asked for: this machine,
    or the device itself when the executor reaches it (a Ray node that advertises it)."""
    here = local_device()
    if asked.name in ("host", here.name):
        return here, True
    if executor is not None and executor.offers(asked):
        return asked, True
    return here, False


def plan_tasks(info: CandidateInfo, profile: DeviceProfile, run_dir: Path, opts: CompareOptions,
               measured_on: str, eval_path: Path, score: bool, available=availability,
               not_run: Optional[list[Measurement]] = None) -> list[MeasureTask]:
    """The measurements to run; what is planned but cannot run goes into `not_run` as rows."""
    tasks = []
    not_run = [] if not_run is None else not_run
    wanted = [BACKENDS.canonical(r) for r in opts.runtimes] if opts.runtimes else None

    def row(runtime, processor_name, precisions, status, reason):
        for precision in precisions or [info.precision]:
            not_run.append(unplanned.not_run(info, runtime, processor_name, precision, profile.name, measured_on,
                                             status, reason))

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
                row(runtime, processor_name, precisions, "unavailable", unplanned.unavailable_reason(
                    runtime, avail, runner.extra))
                continue
            if processor_name not in avail.processors:
                row(runtime, processor_name, precisions, "unavailable",
                    f"{runtime} sees no {processor_name} here (it sees {', '.join(avail.processors) or 'none'})")
                continue
            fmt = runner.deployed_format(info.artifacts)
            if fmt is None:
                row(runtime, processor_name, precisions, "skipped", f"{runtime} loads {', '.join(runner.formats)}; "
                    f"this candidate has {', '.join(info.artifacts) or 'no artifact'}")
                continue
            artifact = run_dir / info.artifacts[fmt]
            options = {"sha256": trusted_sha256(artifact)} if fmt == "torch" else {}
            for precision in precisions:
                key = measurement_key(info.id, runtime, processor_name, precision, profile.name)
                tasks.append(MeasureTask(
                    key=key, candidate=info.id, backend=runtime, artifact=str(artifact), options=options,
                    processor=processor_name, precision=precision, device=profile.name, measured_on=measured_on,
                    eval_data=str(eval_path), num_classes=info.num_classes or 0, threads=profile.threads,
                    timing=asdict(opts.timing), layer_profile=opts.layer_profile and runtime != "pytorch",
                    timeout_s=opts.measure_timeout_s, score=score))
    return tasks


def compare(opts: CompareOptions, reporter: Reporter = SilentReporter()) -> CompareResult:
    if opts.run_name:
        check_run_name(opts.run_name)
    asked = device_profile(opts.device)
    source = resolve_model(opts.model)
    if opts.runtimes:
        for r in opts.runtimes:
            BACKENDS.canonical(r)
    recipes = [load_recipe(r) for r in (opts.recipes or list(DEFAULT_RECIPES))]
    for _, steps in recipes:
        instantiate(steps)  # a bad config is an error now, not after the baseline has trained
    if source.onnx_path is not None:
        opts.input_size = onnx_input_size(source.onnx_path, opts.input_size)

    executor = make_executor(opts.executor, **opts.executor_options)
    target, is_target = measurement_target(asked, executor)
    reporter.stage(f"loading data '{opts.data}' at {opts.input_size}x{opts.input_size}")
    dataset = load_dataset(opts.data, opts.input_size, seed=opts.seed)
    budget = parse_budget(opts.budget)
    validate_recipes(recipes, source, dataset)  # bad configs fail here, before any training
    run_dir = Path(opts.runs_dir) / opts.run_id(source.name, asked.name)

    with RunStore(run_dir) as store:
        quarantined = store.quarantine()
        if quarantined:
            reporter.note(f"{quarantined} unreadable line(s) of {run_dir / 'measurements.jsonl'} moved to "
                          f"quarantine.jsonl; what they held is measured again")
        session = start_session(store, {
            "edgebench": __version__, "model": opts.model, "model_name": source.name, "device": asked.name,
            "device_description": asked.description, "measured_on_device": target.name,
            "measured_on": target.description, "figures_are_target": is_target, "data": dataset.name,
            "input_shape": list(dataset.input_shape), "classes": dataset.num_classes,
            "splits": {"train": len(dataset.train), "calib": len(dataset.calib), "eval": len(dataset.eval)},
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            "started": time.time()}, fingerprint())
        eval_path = run_dir / "data" / "eval.npz"
        if not eval_path.is_file():
            with atomic_path(eval_path, suffix=".npz") as scratch:
                np.savez(scratch, x=dataset.eval.x, y=dataset.eval.y)

        reporter.stage("baseline")
        baseline = build_baseline(source, dataset, BaselineOptions(opts.weights, opts.pretrained, opts.trust_checkpoint,
                                                                   opts.epochs, opts.seed, opts.partial_weights),
                                  reporter.progress)
        builder = CandidateBuilder(store, dataset, source, baseline, opts.epochs, opts.seed, reporter.progress, budget)
        executor.prebuild(builder, recipes, reporter)
        infos, skipped = [], {}
        stored = {m.key: m for m in store.measurements()}

        def keep(m: Measurement) -> None:
            """Store a row unless the same outcome is already stored (a resume adds no duplicates)."""
            old = stored.get(m.key)
            if old is None or (old.status, old.error) != (m.status, m.error):
                store.append(replace(m, session=session))

        for name, steps in recipes:
            reporter.stage(f"candidate {name}")
            status = "skipped"
            try:
                info, reason = builder.build(name, steps)
            except EdgebenchError as e:
                if len(steps) == 0:
                    raise
                # A pass that declines this model is a skip; any other error is this recipe's failure.
                status = "skipped" if isinstance(e, IncompatibleError) else "failed"
                info, reason = None, str(e)
            if info:
                infos.append(info)
                if build_key(name, asked.name) in stored:
                    keep(build_row(name, "ok", "", asked.name))
            else:
                skipped[name] = reason
                keep(build_row(name, status, reason, asked.name))
                reporter.note(f"recipe {name} {status}: {reason}")

        score = source.is_torch or output_fits_classes(source.onnx_path, dataset.num_classes)
        done = store.completed_keys()
        available = executor.availability_on(target)
        not_run: list[Measurement] = []
        tasks = [t for info in infos
                 for t in plan_tasks(info, target, run_dir, opts, target.description, eval_path, score, available,
                                     not_run)
                 if t.key not in done]
        for m in not_run:
            if m.key not in done:  # never supersedes a stored measurement
                keep(m)
        reporter.stage(f"measuring {len(tasks)} candidate x runtime pairs ({len(done)} already stored)")
        count = [0]

        def on_result(m: Measurement) -> None:
            store.append(replace(m, session=session))
            count[0] += 1
            reporter.measured(m)
            reporter.progress("measure", count[0], len(tasks))

        executor.run(tasks, on_result)
        if not is_target:
            reporter.stage(f"estimating {asked.name} from this machine's measurements")
            add_estimates(store, infos, asked, target.name, run_dir, Path(opts.runs_dir), reporter.note)
        measurements = store.measurements()

        reporter.stage("report")
        render_run(run_dir)
        return CompareResult(run_dir, infos, measurements, skipped, dict(store.dropped))


def onnx_input_size(path: Path, default: int) -> int:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value for d in dims]
    if len(values) != 4 or values[1] != 3:
        raise UsageError(f"'{path}' takes input of shape {values}; edgebench needs N x 3 x H x W images")
    if values[2] and values[3]:
        if values[2] != values[3]:
            raise UsageError(f"'{path}' takes {values[2]}x{values[3]} images; only square inputs are supported")
        return values[2]
    return default
