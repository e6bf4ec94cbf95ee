"""Command line: thin Typer commands; the work lives in compare.py, gate/, report/ and the listings."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from edgebench.cli.consoles import make_console
from edgebench.cli.listings import show_backends, show_devices
from edgebench.cli.parts import require_parts
from edgebench.core.errors import DiskFullError, EdgebenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Which compressed variant of a vision model, on which runtime, is best for a device.\n\n"
                       "  edgebench compare mobilenetv3 --device jetson")
console = make_console()
err_console = make_console(stderr=True)
_debug = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    _debug["on"] = debug or bool(os.environ.get("EDGEBENCH_DEBUG"))


def _split(values: Optional[list[str]]) -> Optional[list[str]]:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command()
def compare(
    model: str = typer.Argument(..., help="Model name (e.g. mobilenetv3, resnet18, 'mobilenet*'), an .onnx file, "
                                          "or package.module:factory."),
    device: str = typer.Option("host", "--device", "-d", help="Target device profile or alias (edgebench devices)."),
    data: str = typer.Option("mnist", help="Data: mnist, digits (built in, real scans), imagefolder:PATH, "
                                           "npz:FILE / npy:FILE (arrays keyed by input name), or random / constant "
                                           "(timing only: quality is then not measured)."),
    transfer_data: Optional[str] = typer.Option(None, "--transfer-data", metavar="SPEC",
                                                help="Unlabelled images the distill pass also trains on, with the "
                                                     "teacher's outputs as the only targets: imagefolder:PATH (any "
                                                     "folder of images; class sub-folders are ignored), or for "
                                                     "built-in --data the other digit collection (auto, or mnist / "
                                                     "digits). Images of the eval split are refused."),
    input_size: Optional[int] = typer.Option(None, help="Square image size in pixels (default 64 for a model "
                                                        "edgebench trains; an ONNX file's dynamic H and W)."),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape", help="NAME=1x3x480x640 per input "
                                                    "(repeat for several inputs; several shapes of one input are "
                                                    "measured side by side)."),
    input_dtype: Optional[list[str]] = typer.Option(None, "--input-dtype", help="NAME=int64 (float32, float16, "
                                                    "int64, int32, bool...) for a torch factory's inputs; an ONNX "
                                                    "file declares its own."),
    resize: str = typer.Option("resize", help="How images are fitted to the input: resize, center-crop, letterbox."),
    mean_values: Optional[str] = typer.Option(None, help="Per-channel mean subtracted from pixels (0..255), "
                                                         "e.g. 123.675,116.28,103.53."),
    scale_values: Optional[str] = typer.Option(None, help="Per-channel divisor after the mean (0..255 units)."),
    bgr: bool = typer.Option(False, help="Feed images as BGR instead of RGB."),
    metric: Optional[str] = typer.Option(None, help="Quality metric module:function(outputs, targets) -> float "
                                                    "(default: agreement with FP32 for an ONNX model)."),
    weights: Optional[str] = typer.Option(None, help="State dict to start from (loaded with weights_only=True)."),
    pretrained: bool = typer.Option(False, help="Start from torchvision's weights if they are in the local cache."),
    trust_checkpoint: bool = typer.Option(False, help="Allow a checkpoint that contains pickled code (unsafe)."),
    partial_weights: bool = typer.Option(False, help="Accept --weights that match the model only in part: missing "
                                                     "tensors keep their initial values (the report says so)."),
    recipes: Optional[list[str]] = typer.Option(None, "--recipes", "-r", help="Recipes to run (names or YAML files; "
                                                                               "comma-separated or repeated)."),
    runtimes: Optional[list[str]] = typer.Option(None, "--runtimes", help="Only these runtimes (comma-separated)."),
    epochs: float = typer.Option(2.0, help="Training epochs for the baseline when no weights are given."),
    budget: str = typer.Option("quick", help="Training budget of the compression passes: quick, standard (3x), "
                                             "long (10x) or a multiplier of their default epochs."),
    timing_budget: float = typer.Option(3.0, help="Seconds of timing per measurement, at most."),
    target_ci: float = typer.Option(0.02, help="Stop timing once the median's 95% CI is this narrow (relative)."),
    seed: int = typer.Option(0, help="Seed for splits and training."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where run folders go."),
    name: Optional[str] = typer.Option(None, help="Run folder name (default: derived from the settings and "
                                                  "edgebench's code, so a rerun of the same command resumes)."),
    executor: str = typer.Option("local", help="Where measurements run: local, or ray (on the cluster nodes that "
                                                "advertise the device; docs/cluster.md)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster to use (HOST:PORT); implies --executor ray."),
    clock: str = typer.Option("wall", "--clock", help="What the report ranks by: wall (the time of the Python call) or "
                                                      "runtime (the runtime's own latency, as its C++ benchmark "
                                                      "tools report; OpenVINO; others fall back to wall)."),
    processes: int = typer.Option(1, "--processes", min=1, help="Measure each configuration in this many short "
                                                                "worker processes; the interval then includes the "
                                                                "spread between processes (pyperf's lesson)."),
    wait_quiet: float = typer.Option(0.0, "--wait-quiet", min=0.0, metavar="SECONDS",
                                     help="Wait up to SECONDS for other processes to leave the CPUs before starting "
                                          "(figures measured on a busy machine are flagged unreliable)."),
    build_timeout: float = typer.Option(1800.0, "--build-timeout", min=0.0, metavar="SECONDS",
                                        envvar="EDGEBENCH_BUILD_TIMEOUT",
                                        help="Time each compression pass of a recipe may take (it runs in a worker "
                                             "process); one that takes longer makes that recipe a failed row and the "
                                             "run goes on. 0: build in this process, no limit."),
    scenario: Optional[list[str]] = typer.Option(None, "--scenario", help="MLPerf scenario(s), repeatable or "
                                                 "comma-separated: single-stream (default; p90 latency), multi-stream "
                                                 "(8-sample queries; p99 latency) or offline (requests in flight; "
                                                 "samples per second)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", metavar="N,N", help="Batch sizes to measure, "
                                              "e.g. 1,8 (each its own row; default 1)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout (progress goes to "
                                                        "stderr)."),
) -> None:
    """Build candidates, time them on every runtime, and report the accuracy-latency Pareto front.

    Exits 0 when every planned measurement ran, 13 when one failed, 14 when nothing was measured;
    the report is written in every case (README, "Exit codes")."""
    require_parts("compare", "compare", "report")  # before anything imports torch
    from edgebench.cli.progress import RichReporter
    from edgebench.compare import CompareOptions
    from edgebench.compare import compare as run_compare
    from edgebench.measure.scenarios import parse_batch_sizes, parse_scenarios
    from edgebench.measure.timing import TimingConfig

    scenarios, batches = parse_scenarios(scenario), parse_batch_sizes(batch_sizes)  # bad values: one line, exit 2
    if resize not in ("resize", "center-crop", "letterbox"):
        raise typer.BadParameter("use resize, center-crop or letterbox", param_hint="--resize")
    opts = CompareOptions(model=model, device=device, data=data, transfer_data=transfer_data,
                          input_size=input_size, weights=weights,
                          input_shapes=list(input_shape or []), input_dtypes=list(input_dtype or []),
                          resize=resize, mean_values=mean_values,
                          scale_values=scale_values, bgr=bgr, metric=metric,
                          pretrained=pretrained, trust_checkpoint=trust_checkpoint, partial_weights=partial_weights,
                          recipes=_split(recipes),
                          runtimes=_split(runtimes), epochs=epochs, budget=budget, seed=seed, runs_dir=runs_dir, run_name=name,
                          timing=TimingConfig(time_budget_s=timing_budget, target_ci=target_ci), executor=executor,
                          wait_quiet_s=wait_quiet, build_timeout_s=build_timeout, clock=clock,
                          processes=processes, scenarios=scenarios, batch_sizes=batches)
    if ray_address:
        opts.executor, opts.executor_options = "ray", {"address": ray_address}
    from edgebench.cli.outcome import counts, outcome_error
    from edgebench.cli.terminal import print_summary, summary_json

    with RichReporter(err_console if json_out else console) as reporter:
        result = run_compare(opts, reporter)
    if json_out:
        typer.echo(json.dumps(summary_json(result.run_dir, counts(result.measurements)), indent=2, default=str))
    else:
        print_summary(console, result.run_dir)
    error = outcome_error(result.measurements, result.run_dir)
    if error:
        raise error


@app.command()
def backends(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which runtimes are usable here, their versions and processors, and why not when they are not."""
    show_backends(console, json_out)


@app.command()
def devices(
    action: Optional[str] = typer.Argument(None, help="'calibrate': measure this machine's compute and bandwidth "
                                                       "and write a profile."),
    name: str = typer.Option("host-calibrated", help="calibrate: name of the profile to write or update."),
    out: Optional[Path] = typer.Option(None, help="calibrate: profile file (default: first $EDGEBENCH_PROFILES "
                                                  "folder, else ~/.config/edgebench/device_profiles)."),
    allow_busy: bool = typer.Option(False, "--allow-busy", help="calibrate: write the profile even when other "
                                                                "processes were using the CPUs (figures too low)."),
    ray_address: Optional[str] = typer.Option(None, help="List the devices this Ray cluster's nodes advertise "
                                                         "instead (HOST:PORT)."),
    json_out: bool = typer.Option(False, "--json", help="Print the profiles as JSON."),
) -> None:
    """Device profiles, their aliases, and which one this machine is; `devices calibrate` measures this one."""
    if action == "calibrate":
        from edgebench.estimate.calibrate import write_profile

        path, figures = write_profile(name, out, allow_busy=allow_busy)
        console.print(f"wrote {escape(str(path))}: peak GFLOP/s {figures['peak_gflops']}, "
                      f"bandwidth {figures['memory_bandwidth_gbs']} GB/s ({figures['threads']} threads)")
        return
    if action is not None:
        from edgebench.core.errors import UsageError

        raise UsageError(f"unknown action '{action}' for devices; the only one is 'calibrate'")
    if ray_address:
        from edgebench.execute.ray.cluster import print_cluster_devices

        print_cluster_devices(console, ray_address)
        return

    show_devices(console, json_out)


@app.command()
def measure(
    run: Path = typer.Argument(..., help="Run folder built by `edgebench compare` elsewhere and copied here."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device profile the figures are for "
                                                                      "(default: the one this machine detects as)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where the measurements go "
                                                                 "(default: RUN/on-device/DEVICE)."),
    runtimes: Optional[list[str]] = typer.Option(None, "--runtimes", help="Only these runtimes (comma-separated)."),
    scenario: Optional[list[str]] = typer.Option(None, "--scenario", help="MLPerf scenario(s) as for compare "
                                                 "(default: the ones the run was made with)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", metavar="N,N", help="Batch sizes to measure "
                                              "(default: the ones the run was made with)."),
) -> None:
    """Measure a copied run folder on this device (a light install is enough); merge the result
    on the building machine with `edgebench report RUN --merge FOLDER`."""
    from edgebench.measure.on_device import measure_run
    from edgebench.measure.scenarios import parse_batch_sizes, parse_scenarios

    # Validated as compare's are, before anything is measured (bad values: one line, exit 2).
    scenarios = parse_scenarios(scenario) if scenario else None
    batches = parse_batch_sizes(batch_sizes) if batch_sizes is not None else None

    def progress(m, done, total):
        state = f"{m.median_ms:.3f} ms" if m.ok and m.median_ms else (m.error or m.status)
        where = (f" / {m.scenario}" if m.scenario != "single-stream" else "") + \
                (f" / batch {m.batch_size}" if m.batch_size != 1 else "")
        console.print(f"[{done}/{total}] {escape(m.candidate)} / {m.backend} ({m.precision}){escape(where)}: "
                      f"{escape(state)}", highlight=False)

    result = measure_run(run, device=device, out_dir=out, runtimes=_split(runtimes), scenarios=scenarios,
                         batch_sizes=batches, on_result=progress)
    if result.identity_warning:
        err_console.print(f"[yellow]warning:[/yellow] {escape(result.identity_warning)}", highlight=False)
    ok = sum(m.ok for m in result.measurements)
    console.print(f"{result.planned} measured now, {ok} ok in all, for {result.device}: {result.out_dir}\n"
                  f"Merge on the building machine: edgebench report {run} --merge {result.out_dir}", highlight=False)


@app.command()
def report(runs: list[Path] = typer.Argument(..., help="Run folders (or report.json files) to render."),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of into the run folder; "
                                                                     "with several runs, where comparison.html goes "
                                                                     "(default: the first run's folder)."),
           merge: Optional[list[Path]] = typer.Option(None, "--merge", help="Folders written by `edgebench measure` "
                                                                          "on a device: add their rows to the (one) "
                                                                          "run first.")) -> None:
    """Re-render a run's report; given several runs, also compare them on one page."""
    from edgebench.cli.terminal import print_dropped
    from edgebench.core.errors import NotFoundError, UsageError
    from edgebench.core.merge import merge_measurements
    from edgebench.core.store import RunStore
    from edgebench.report import render_run
    from edgebench.report.compare import render_comparison

    for run in runs:
        if not run.exists():
            raise NotFoundError(f"run '{run}' does not exist")
    if merge:
        if len(runs) != 1 or not runs[0].is_dir():
            raise UsageError("--merge adds device measurements to one run folder; name exactly one")
        with RunStore(runs[0]) as store:
            for folder in merge:
                merged = merge_measurements(store, folder)
                console.print(f"merged {merged.added} measurement(s) from {folder}", highlight=False)
                if merged.conflicts:
                    err_console.print(f"[yellow]warning:[/yellow] {merged.conflicts} row(s) not merged: the run holds "
                                      f"the same measurement, measured on another machine (both are 'host'; give the device "
                                      f"a profile with a detect rule, docs/on-device.md)", highlight=False)
    for run in runs:
        paths = render_run(run, out if len(runs) == 1 else None)
        console.print(escape(f"{run}: " + ", ".join(str(p) for p in paths.values())), highlight=False)
        print_dropped(console, run)
    if len(runs) > 1:
        paths = render_comparison(runs, out)
        console.print(escape("comparison: " + ", ".join(str(p) for p in paths.values())), highlight=False)


@app.command()
def gate(
    baseline: Optional[Path] = typer.Option(None, "--baseline", "-b", help="Baseline run folder or report.json."),
    current: Optional[Path] = typer.Option(None, "--current", "-c", help="Current run folder or report.json."),
    baseline_model: Optional[Path] = typer.Option(None, help="Baseline .onnx (or OpenVINO .xml): measured now, "
                                                             "interleaved with --current-model in one session."),
    current_model: Optional[Path] = typer.Option(None, help="Current .onnx (or .xml), measured with the baseline."),
    max_slowdown: str = typer.Option("5%", help="Largest latency increase allowed (5% or 0.05)."),
    metric: str = typer.Option("p50", help="Latency percentile gated: p50, p90 or p99."),
    max_accuracy_drop: float = typer.Option(1.0, help="Largest top-1 drop allowed, in percentage points."),
    max_size_increase: str = typer.Option("5%", help="Largest artifact size increase allowed."),
    alpha: float = typer.Option(0.002, help="Significance level: Mann-Whitney U for p50 (asv's 0.002), bootstrap for p90/p99."),
    runtime: str = typer.Option("onnxruntime", help="Interleaved mode: runtime to time both models on."),
    threads: Optional[int] = typer.Option(None, help="Interleaved mode: runtime threads (default: the runtime's)."),
    budget: float = typer.Option(20.0, help="Interleaved mode: seconds of timing at most."),
    target_ci: float = typer.Option(0.01, help="Interleaved mode: stop once the gated percentile's 95% CI is this "
                                               "narrow (relative) for both models."),
    input_size: Optional[int] = typer.Option(None, help="Interleaved mode: input size for models without a fixed one."),
    data: Optional[str] = typer.Option(None, help="Interleaved mode: also gate accuracy on this dataset (digits, "
                                                  "mnist, imagefolder:PATH, or npz:FILE with one array per "
                                                  "input name and optionally 'targets')."),
    quality: str = typer.Option("auto", help="Interleaved mode, with --data: top1 (labels), agreement (the "
                                            "current model's outputs against the baseline's), or auto: top1 "
                                            "where labels fit the models, agreement otherwise."),
    min_agreement: float = typer.Option(0.99, help="Agreement with the baseline's outputs below this fails: "
                                                   "top-1 agreement for class scores, else cosine of the first output."),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape", help="Interleaved mode: NAME=1x3x224x224 "
                                                    "per input with dynamic dims (repeatable)."),
    markdown: Optional[Path] = typer.Option(None, help="Write a Markdown summary (pull-request comment) here."),
    junit: Optional[Path] = typer.Option(None, help="Write JUnit XML here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full verdict as JSON here."),
    annotations: str = typer.Option("auto", help="GitHub Actions annotations: auto (in Actions), always, never."),
) -> None:
    """Fail CI when latency regressed beyond noise, or accuracy or size regressed (exit 10)."""
    from edgebench.gate.command import GateOptions, finish, run_gate, write_outputs
    from edgebench.gate.outputs import console_table
    from edgebench.gate.stats import parse_fraction
    from edgebench.gate.verdict import GateSettings

    settings = GateSettings(metric=metric, max_slowdown=parse_fraction(max_slowdown, "--max-slowdown"),
                            max_accuracy_drop=max_accuracy_drop,
                            max_size_increase=parse_fraction(max_size_increase, "--max-size-increase"), alpha=alpha,
                            min_agreement=min_agreement)
    opts = GateOptions(baseline=baseline, current=current, baseline_model=baseline_model, current_model=current_model,
                       settings=settings, runtime=runtime, threads=threads, budget_s=budget, target_ci=target_ci,
                       input_size=input_size, data=data, quality=quality, input_shapes=tuple(input_shape or ()),
                       markdown=markdown, junit=junit, json=json_out,
                       annotations=annotations)
    result = run_gate(opts)
    console.print(console_table(result))
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    write_outputs(result, opts, typer.echo)
    finish(result)


def main() -> None:
    try:
        app(standalone_mode=False)
    except EdgebenchError as e:
        if _debug["on"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; everything measured so far is in the run folder")
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as e:
        import errno

        if e.errno != errno.ENOSPC or _debug["on"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] disk full writing '{escape(str(e.filename))}'; "
                          "everything stored before is intact, rerun to resume", highlight=False, soft_wrap=True)
        sys.exit(DiskFullError.exit_code)
    except Exception as e:
        # Usage errors from the (vendored) click parser: unknown option, missing argument.
        code = getattr(e, "exit_code", None)
        if hasattr(e, "show") and isinstance(code, int):
            e.show()
            sys.exit(code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        raise

