"""Command line: thin Typer commands; the work lives in pipeline.py, report/, devices.py."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import EdgebenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Which compressed variant of a vision model, on which runtime, is best for a device.\n\n"
                       "  edgebench compare mobilenetv3 --device jetson")
console = Console()
err_console = Console(stderr=True)
_debug = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    _debug["on"] = debug or bool(os.environ.get("EDGEBENCH_DEBUG"))


def _split(values: Optional[List[str]]) -> Optional[list[str]]:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command()
def compare(
    model: str = typer.Argument(..., help="Model name (e.g. mobilenetv3, resnet18, 'mobilenet*'), an .onnx file, "
                                          "or package.module:factory."),
    device: str = typer.Option("host", "--device", "-d", help="Target device profile or alias (edgebench devices)."),
    data: str = typer.Option("mnist", help="Dataset: mnist, digits (built in, real scans) or imagefolder:PATH."),
    input_size: int = typer.Option(64, help="Square input size in pixels; stated in every report."),
    weights: Optional[str] = typer.Option(None, help="State dict to start from (loaded with weights_only=True)."),
    pretrained: bool = typer.Option(False, help="Start from torchvision's weights if they are in the local cache."),
    trust_checkpoint: bool = typer.Option(False, help="Allow a checkpoint that contains pickled code (unsafe)."),
    recipes: Optional[List[str]] = typer.Option(None, "--recipes", "-r", help="Recipes to run (names or YAML files; "
                                                                               "comma-separated or repeated)."),
    runtimes: Optional[List[str]] = typer.Option(None, "--runtimes", help="Only these runtimes (comma-separated)."),
    epochs: float = typer.Option(2.0, help="Training epochs for the baseline when no weights are given."),
    budget: str = typer.Option("quick", help="Training budget of the compression passes: quick, standard (3x), "
                                             "long (10x) or a multiplier of their default epochs."),
    timing_budget: float = typer.Option(3.0, help="Seconds of timing per measurement, at most."),
    target_ci: float = typer.Option(0.02, help="Stop timing once the median's 95% CI is this narrow (relative)."),
    seed: int = typer.Option(0, help="Seed for splits and training."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where run folders go."),
    name: Optional[str] = typer.Option(None, help="Run folder name (default: derived from the settings, so a "
                                                  "rerun of the same command resumes)."),
    executor: str = typer.Option("local", help="Where measurements run: local."),
) -> None:
    """Build candidates, time them on every runtime, and report the accuracy-latency Pareto front."""
    from .pipeline import CompareOptions, compare as run_compare
    from .progress import RichReporter
    from .timing import TimingConfig

    opts = CompareOptions(model=model, device=device, data=data, input_size=input_size, weights=weights,
                          pretrained=pretrained, trust_checkpoint=trust_checkpoint, recipes=_split(recipes),
                          runtimes=_split(runtimes), epochs=epochs, budget=budget, seed=seed, runs_dir=runs_dir, run_name=name,
                          timing=TimingConfig(time_budget_s=timing_budget, target_ci=target_ci), executor=executor)
    with RichReporter(console) as reporter:
        result = run_compare(opts, reporter)
    from .terminal import print_summary
    print_summary(console, result.run_dir)


@app.command()
def backends() -> None:
    """Which runtimes are usable here, their versions and processors, and why not when they are not."""
    from .backends import BACKENDS, availability

    table = Table(title="runtimes")
    for col in ("runtime", "status", "version", "processors", "precisions", "note"):
        table.add_column(col, overflow="fold")
    for name, runner in BACKENDS.items():
        a = availability(name)
        if a.available:
            table.add_row(name, "[green]available", a.version or "", ", ".join(a.processors), ", ".join(a.precisions), "")
        else:
            table.add_row(name, "[red]unavailable", "", ", ".join(runner.devices), "", f"{a.reason}; {a.install or ''}")
    console.print(table)


@app.command()
def devices() -> None:
    """Device profiles, their aliases, and which one this machine is."""
    from .devices import all_profiles, local_device

    here = local_device().name
    table = Table(title="device profiles")
    for col in ("device", "aliases", "processors", "runtimes", "this machine"):
        table.add_column(col, overflow="fold")
    for p in all_profiles().values():
        procs = ", ".join(f"{k}: {v.name}" for k, v in p.processors.items())
        rts = ", ".join(sorted({r for v in p.processors.values() for r in v.runtimes}))
        table.add_row(p.name, ", ".join(p.aliases), procs, rts, "yes" if p.name == here else "")
    console.print(table)
    console.print(f"This machine is recognised as: [bold]{here}[/bold]")


@app.command()
def report(runs: List[Path] = typer.Argument(..., help="Run folders (or report.json files) to render.")) -> None:
    """Re-render the report of a run folder."""
    from .errors import NotFoundError
    from .report import render_run

    for run in runs:
        if not run.exists():
            raise NotFoundError(f"run '{run}' does not exist")
        paths = render_run(run if run.is_dir() else run.parent)
        console.print(f"{run}: " + ", ".join(str(p) for p in paths.values()))


def main() -> None:
    try:
        app(standalone_mode=False)
    except EdgebenchError as e:
        if _debug["on"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
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
        err_console.print(f"[bold red]error:[/bold red] disk full writing '{e.filename}'; "
                          "everything stored before is intact, rerun to resume", highlight=False, soft_wrap=True)
        sys.exit(8)
    except Exception as e:
        # Usage errors from the (vendored) click parser: unknown option, missing argument.
        if hasattr(e, "show") and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
