"""`compare`: candidates x runtimes x device, resumable.

Each step stores its result before the next starts (candidates in their folders, measurements as
JSON lines), so a failure or a kill later loses nothing, and rerunning the same command picks up
where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
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
from edgebench.core.errors import EdgebenchError, UsageError
from edgebench.core.records import CandidateInfo, Measurement
from edgebench.core.store import RunStore
from edgebench.devices.profiles import DeviceProfile
from edgebench.estimate.device_rows import add_estimates
from edgebench.execute.local import make_executor
from edgebench.measure.environment import fingerprint
from edgebench.measure.identity import relabelled_run_info
from edgebench.measure.plan import PlanSettings, plan_measurements
from edgebench.measure.timing import TimingConfig
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
            return self.run_name
        settings = {k: v for k, v in asdict(self).items() if k not in ("runs_dir", "run_name", "executor",
                                                                          "executor_options", "measure_timeout_s")}
        return f"{model_name}-{device}-{content_key(settings)[:8]}"


@dataclass
class CompareResult:
    run_dir: Path
    candidates: list[CandidateInfo]
    measurements: list[Measurement]
    skipped_recipes: dict[str, str]


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
               measured_on: str, eval_path: Path, score: bool, available=availability) -> list[MeasureTask]:
    settings = PlanSettings(runtimes=opts.runtimes, timing=asdict(opts.timing), layer_profile=opts.layer_profile,
                            timeout_s=opts.measure_timeout_s)
    return plan_measurements(info, profile, run_dir, settings, measured_on, eval_path, score, available)


def compare(opts: CompareOptions, reporter: Reporter = SilentReporter()) -> CompareResult:
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
        store.write_run_info({
            "edgebench": __version__, "model": opts.model, "model_name": source.name, "device": asked.name,
            "device_description": asked.description, "measured_on_device": target.name,
            "measured_on": target.description, "figures_are_target": is_target, "data": dataset.name,
            "input_shape": list(dataset.input_shape), "classes": dataset.num_classes,
            "splits": {"train": len(dataset.train), "calib": len(dataset.calib), "eval": len(dataset.eval)},
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            "environment": fingerprint(), "started": time.time()})
        eval_path = run_dir / "data" / "eval.npz"
        if not eval_path.is_file():
            with atomic_path(eval_path, suffix=".npz") as scratch:
                np.savez(scratch, x=dataset.eval.x, y=dataset.eval.y)

        reporter.stage("baseline")
        baseline = build_baseline(source, dataset, BaselineOptions(opts.weights, opts.pretrained, opts.trust_checkpoint,
                                                                   opts.epochs, opts.seed), reporter.progress)
        builder = CandidateBuilder(store, dataset, source, baseline, opts.epochs, opts.seed, reporter.progress, budget)
        executor.prebuild(builder, recipes, reporter)
        infos, skipped = [], {}
        for name, steps in recipes:
            reporter.stage(f"candidate {name}")
            try:
                info, reason = builder.build(name, steps)
            except EdgebenchError as e:
                if len(steps) == 0:
                    raise
                info, reason = None, f"failed: {e}"
            if info:
                infos.append(info)
            else:
                skipped[name] = reason
                reporter.note(f"recipe {name} skipped: {reason}")

        score = source.is_torch or output_fits_classes(source.onnx_path, dataset.num_classes)
        done = store.completed_keys()
        available = executor.availability_on(target)
        tasks = [t for info in infos
                 for t in plan_tasks(info, target, run_dir, opts, target.description, eval_path, score, available)
                 if t.key not in done]
        reporter.stage(f"measuring {len(tasks)} candidate x runtime pairs ({len(done)} already stored)")
        count = [0]

        def on_result(m: Measurement) -> None:
            store.append(m)
            count[0] += 1
            reporter.measured(m)
            reporter.progress("measure", count[0], len(tasks))

        executor.run(tasks, on_result)
        corrected = relabelled_run_info(store.run_info(), store.measurements())
        if corrected is not None:  # a node advertised the device but is not one
            store.write_run_info(corrected)
            for warning in corrected["identity_warnings"]:
                reporter.note(warning)
        if not is_target:
            reporter.stage(f"estimating {asked.name} from this machine's measurements")
            add_estimates(store, infos, asked, target.name, run_dir, Path(opts.runs_dir), reporter.note)
        measurements = store.measurements()

        reporter.stage("report")
        render_run(run_dir)
        return CompareResult(run_dir, infos, measurements, skipped)


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
