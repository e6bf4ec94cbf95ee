"""`compare`: candidates x runtimes x device, resumable.

Each step stores its result before the next starts (candidates in their folders, measurements as
JSON lines), so a failure or a kill later loses nothing, and rerunning the same command picks up
where it stopped.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol

from edgebench import __version__
from edgebench.backends import BACKENDS, availability
from edgebench.backends.host import device_profile, local_device
from edgebench.compress import DEFAULT_RECIPES, instantiate, load_recipe, validate_recipes
from edgebench.compress.base import parse_budget
from edgebench.compress.build_worker import BuildWorker
from edgebench.compress.builder import BaselineOptions, CandidateBuilder, build_baseline
from edgebench.core.cache import code_digest, content_key
from edgebench.core.errors import EdgebenchError, IncompatibleError, UsageError
from edgebench.core.records import CandidateInfo, Measurement
from edgebench.core.sessions import check_run_name, start_session
from edgebench.core.store import RunStore
from edgebench.devices.profiles import DeviceProfile
from edgebench.estimate.device_rows import add_estimates
from edgebench.execute.local import make_executor
from edgebench.measure.contention import check_before_run
from edgebench.measure.environment import fingerprint
from edgebench.measure.identity import relabelled_run_info
from edgebench.measure.pairing import pair_with_baseline
from edgebench.measure.plan import PlanSettings, plan_measurements
from edgebench.measure.run_inputs import RunInputs, labelled_inputs, onnx_inputs
from edgebench.measure.scenarios import parse_batch_sizes, parse_scenarios
from edgebench.measure.timing import TimingConfig
from edgebench.measure.unplanned import build_key, build_row
from edgebench.measure.worker import MeasureTask
from edgebench.models.data import Dataset, load_dataset
from edgebench.models.input_data import Preprocess, parse_values
from edgebench.models.inputs import parse_input_shapes
from edgebench.models.torch_export import export_factory, parse_input_dtypes
from edgebench.models.transfer import load_transfer_set, resolve_transfer_spec
from edgebench.models.zoo import ModelSource, resolve_model
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


def default_build_timeout() -> float:
    """--build-timeout's default: EDGEBENCH_BUILD_TIMEOUT when set (CI that wants in-process builds
    sets 0), else 1800 s per pass."""
    value = os.environ.get("EDGEBENCH_BUILD_TIMEOUT", "1800")
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"EDGEBENCH_BUILD_TIMEOUT must be a number of seconds, not {value!r}") from None


@dataclass
class CompareOptions:
    model: str
    device: str = "host"
    data: str = "mnist"
    transfer_data: Optional[str] = None  # unlabelled images for the distill pass (models/transfer.py)
    input_size: Optional[int] = None  # None: 64 for a model edgebench trains; an ONNX file's own shape
    input_shapes: list[str] = field(default_factory=list)  # --input-shape NAME=1x3x48x320, repeatable
    input_dtypes: list[str] = field(default_factory=list)  # --input-dtype NAME=int64: a torch factory's inputs
    resize: str = "resize"  # image preprocessing for an ONNX model's data: resize | center-crop | letterbox
    mean_values: Optional[str] = None  # pixel units, e.g. "123.675,116.28,103.53"
    scale_values: Optional[str] = None
    bgr: bool = False
    metric: Optional[str] = None  # a user metric, module:function or a registered name
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
    # Each pass of a recipe gets this long in a build worker before the recipe is a failed row
    # (compress/build_worker.py); 0 builds in this process with no limit.
    build_timeout_s: float = field(default_factory=lambda: default_build_timeout())
    layer_profile: bool = True
    executor: str = "local"
    executor_options: dict = field(default_factory=dict)
    wait_quiet_s: float = 0.0  # wait up to this long at the start for other processes to quiet down
    processes: int = 1  # worker processes per measurement; the interval spans their spread
    clock: str = "wall"  # what ranks: wall (the Python-visible call) | runtime (the runtime's own figure)
    scenarios: list[str] = field(default_factory=lambda: ["single-stream"])  # --scenario: measure/scenarios.py
    batch_sizes: list[int] = field(default_factory=lambda: [1])  # --batch-sizes 1,8

    def run_id(self, model_name: str, device: str) -> str:
        """The run folder's name: --name, or one per settings and code, so that a rerun resumes its
        own folder and a rerun after an upgrade starts a new one (its candidates are the new code's)."""
        if self.run_name:
            return check_run_name(self.run_name)
        settings = {k: v for k, v in asdict(self).items() if k not in ("runs_dir", "run_name", "executor",
                                                                          "executor_options", "measure_timeout_s",
                                                                          "wait_quiet_s", "build_timeout_s")}
        return f"{model_name}-{device}-{content_key(settings, code_digest())[:8]}"


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
               measured_on: str, inputs: RunInputs, available=availability,
               not_run: Optional[list[Measurement]] = None) -> list[MeasureTask]:
    """The measurements to run; what is planned but cannot run goes into `not_run` as rows."""
    settings = PlanSettings(runtimes=opts.runtimes, timing=asdict(opts.timing), layer_profile=opts.layer_profile,
                            timeout_s=opts.measure_timeout_s, clock=opts.clock, processes=opts.processes,
                            scenarios=tuple(opts.scenarios), batch_sizes=tuple(opts.batch_sizes))
    return plan_measurements(info, profile, run_dir, settings, measured_on, inputs, available, not_run)


def compare(opts: CompareOptions, reporter: Reporter = SilentReporter()) -> CompareResult:
    if opts.run_name:
        check_run_name(opts.run_name)
    if opts.runtimes:
        for r in opts.runtimes:
            BACKENDS.canonical(r)
    recipes = [load_recipe(r) for r in (opts.recipes or list(DEFAULT_RECIPES))]
    for _, steps in recipes:
        instantiate(steps)  # a bad config is an error now, not after the baseline has trained
    if opts.build_timeout_s < 0:
        raise UsageError(f"--build-timeout must be 0 (no limit) or more, not {opts.build_timeout_s:g}")
    if opts.processes < 1:
        raise UsageError(f"--processes must be at least 1, not {opts.processes}")
    if opts.clock not in ("wall", "runtime"):
        raise UsageError(f"--clock must be wall or runtime, not '{opts.clock}'")
    opts.scenarios = parse_scenarios(opts.scenarios)
    opts.batch_sizes = parse_batch_sizes(",".join(map(str, opts.batch_sizes)))
    # After the checks above, which need no torch. The model first: an unknown name is only known to
    # be unknown once torchvision has loaded (2 s), while the host profile asks every runtime whether
    # it is installed (several seconds), which a misspelt model name should not wait for.
    source = resolve_model(opts.model)
    asked = device_profile(opts.device)
    load_at_start = check_before_run(opts.wait_quiet_s, reporter.note)
    executor = make_executor(opts.executor, **opts.executor_options)
    target, is_target = measurement_target(asked, executor)
    budget = parse_budget(opts.budget)
    run_dir = Path(opts.runs_dir) / opts.run_id(source.name, asked.name)
    if opts.transfer_data is not None:
        if source.onnx_path is not None or opts.input_shapes:
            raise UsageError(f"--transfer-data is for distilling a model edgebench trains; '{opts.model}' is "
                             f"measured as an ONNX graph, which the distill pass cannot train")
        resolve_transfer_spec(opts.transfer_data, opts.data)  # a bad spec fails before any data is loaded
    if source.is_torch and opts.input_shapes:
        # Not an image classifier to train: exported by its named inputs, then measured as any ONNX model.
        reporter.stage(f"exporting {source.spec} by its inputs")
        onnx_path = run_dir / "exports" / "model-inputs.onnx"
        if not onnx_path.is_file():
            export_factory(source, parse_input_shapes(opts.input_shapes), parse_input_dtypes(opts.input_dtypes),
                           onnx_path, opts.weights, opts.trust_checkpoint)
        source = ModelSource(name=source.name, spec=source.spec, onnx_path=onnx_path)
    if source.onnx_path is not None:
        reporter.stage(f"storing evaluation inputs from '{opts.data}'")
        inputs = onnx_inputs(source.onnx_path, run_dir / "data", opts.data, opts.input_shapes, opts.input_size,
                             Preprocess(opts.resize, parse_values(opts.mean_values), parse_values(opts.scale_values),
                                        opts.bgr), opts.metric, opts.seed)
        dataset = Dataset.unlabelled(inputs.data, inputs.sets[0].specs[0].shape)
    else:
        size = opts.input_size or 64
        reporter.stage(f"loading data '{opts.data}' at {size}x{size}")
        dataset = load_dataset(opts.data, size, seed=opts.seed)
        if opts.transfer_data is not None:
            reporter.stage(f"loading transfer images '{opts.transfer_data}'")
            dataset.transfer = load_transfer_set(opts.transfer_data, dataset)
            if not any(step.get("pass") == "distill" for _, steps in recipes for step in steps):
                reporter.note("--transfer-data: no recipe distills, so the transfer images are not used")
        validate_recipes(recipes, source, dataset)  # bad configs fail here, before any training or file
        inputs = labelled_inputs(run_dir / "data", dataset)

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
            "transfer": {"source": dataset.transfer.source, "images": len(dataset.transfer)}
            if dataset.transfer is not None else None,
            "inputs": inputs.describe(),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            "load_at_start": load_at_start, "started": time.time()}, fingerprint(), code_digest())

        reporter.stage("baseline")
        baseline = build_baseline(source, dataset, BaselineOptions(opts.weights, opts.pretrained, opts.trust_checkpoint,
                                                                   opts.epochs, opts.seed, opts.partial_weights),
                                  reporter.progress)
        builder = CandidateBuilder(store, dataset, source, baseline, opts.epochs, opts.seed, reporter.progress, budget,
                                   calibration=None if inputs.labelled else inputs.calibration, device=asked)
        executor.prebuild(builder, recipes, reporter)
        infos, skipped = [], {}
        stored = {m.key: m for m in store.measurements()}

        def keep(m: Measurement) -> None:
            """Store a row unless the same outcome is already stored (a resume adds no duplicates)."""
            old = stored.get(m.key)
            if old is None or (old.status, old.error) != (m.status, m.error):
                store.append(replace(m, session=session))

        worker = BuildWorker(builder, opts.build_timeout_s, reporter.progress, reporter.note) \
            if opts.build_timeout_s > 0 else None
        try:
            for name, steps in recipes:
                reporter.stage(f"candidate {name}")
                status = "skipped"
                try:
                    info, reason = worker.build(name, steps) if steps and worker else builder.build(name, steps)
                except EdgebenchError as e:
                    if len(steps) == 0:
                        raise
                    # A pass that declines this model is a skip; any other error is this recipe's failure.
                    status = "skipped" if isinstance(e, IncompatibleError) else "failed"
                    info, reason = None, str(e)
                # A pass's bug on one architecture is that recipe's failed row, not a lost run.
                except Exception as e:  # noqa: BLE001
                    if len(steps) == 0:
                        raise
                    message = str(e).splitlines()[0][:200] if str(e) else ""
                    status, info, reason = "failed", None, f"{type(e).__name__}: {message}"
                if info:
                    infos.append(info)
                    if build_key(name, asked.name) in stored:
                        keep(build_row(name, "ok", "", asked.name))
                else:
                    reason = reason or "not built"  # build() always gives a reason when it returns no candidate
                    skipped[name] = reason
                    keep(build_row(name, status, reason, asked.name))
                    reporter.note(f"recipe {name} {status}: {reason}")
        finally:
            if worker:
                worker.close()  # stops the build worker, also when a build raised past the loop
        if infos:
            inputs.add_references(Path(builder.export_fp32(baseline)["onnx"]), target.threads)
        done = store.completed_keys()
        available = executor.availability_on(target)
        not_run: list[Measurement] = []
        # Paired before stored rows are left out: a resumed candidate still times against the baseline.
        tasks = [t for t in pair_with_baseline([t for info in infos for t in plan_tasks(
            info, target, run_dir, opts, target.description, inputs, available, not_run)]) if t.key not in done]
        for m in not_run:
            if m.key not in done:  # never supersedes a stored measurement
                keep(m)
        reporter.stage(f"measuring {len(tasks)} candidate x runtime pairs ({len(done)} already stored)")
        if opts.processes > 1 and len(tasks) > 1:
            reporter.note(f"each pair runs in {opts.processes} processes spread over the whole stage, interleaved with "
                          f"the others: rows arrive in the last round")
        count = [0]

        def on_result(m: Measurement) -> None:
            store.append(replace(m, session=session))
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
        return CompareResult(run_dir, infos, measurements, skipped, dict(store.dropped))

