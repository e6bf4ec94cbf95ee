"""`edgebench gate`: pick the mode from the options, run it, write the CI outputs, set the exit code.

Exit codes: 0 pass; 10 (errors.RegressionFound) when a check regressed; the usual EdgebenchError
codes for bad input (3 missing, 4 malformed, 5 different devices, 11 nothing in common, 2 usage).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgebench.core.atomic import write_atomic
from edgebench.core.errors import RegressionFound, UsageError
from edgebench.gate.inputs import load_gate_run
from edgebench.gate.interleave import gate_models
from edgebench.gate.outputs import github_annotations, json_text, junit_xml, markdown
from edgebench.gate.stats import METRICS
from edgebench.gate.verdict import GateResult, GateSettings, evaluate


@dataclass
class GateOptions:
    baseline: Optional[Path] = None
    current: Optional[Path] = None
    baseline_model: Optional[Path] = None
    current_model: Optional[Path] = None
    settings: GateSettings = GateSettings()
    runtime: str = "onnxruntime"
    threads: Optional[int] = None
    budget_s: float = 20.0
    target_ci: float = 0.01
    input_size: Optional[int] = None
    data: Optional[str] = None
    quality: str = "auto"  # with --data: auto | top1 | agreement (with the baseline's outputs)
    input_shapes: tuple = ()  # --input-shape NAME=DIMS values, as compare takes them
    markdown: Optional[Path] = None
    junit: Optional[Path] = None
    json: Optional[Path] = None
    annotations: str = "auto"  # auto (when running in GitHub Actions) | always | never


def run_gate(opts: GateOptions) -> GateResult:
    if opts.settings.metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}, not '{opts.settings.metric}'")
    if opts.annotations not in ("auto", "always", "never"):
        raise UsageError(f"--annotations must be auto, always or never, not '{opts.annotations}'")
    runs = opts.baseline is not None or opts.current is not None
    models = opts.baseline_model is not None or opts.current_model is not None
    if runs == models:
        raise UsageError("give either --baseline and --current (run folders or report.json files), or "
                         "--baseline-model and --current-model (measured now, interleaved)")
    if not -1.0 <= opts.settings.min_agreement <= 1.0:
        raise UsageError(f"--min-agreement must be between -1 and 1 (cosine) or 0 and 1 (top-1 agreement), "
                         f"not {opts.settings.min_agreement:g}")
    if runs:
        if opts.input_shapes or opts.quality != "auto":
            raise UsageError("--input-shape and --quality apply to --baseline-model/--current-model (interleaved)")
        if opts.baseline is None or opts.current is None:
            raise UsageError("give both --baseline and --current")

        baseline = load_gate_run(opts.baseline, "baseline")
        current = load_gate_run(opts.current, "current")
        return evaluate(baseline, current, opts.settings)
    if opts.baseline_model is None or opts.current_model is None:
        raise UsageError("give both --baseline-model and --current-model")
    if opts.budget_s <= 0 or opts.target_ci <= 0:
        raise UsageError("--budget and --target-ci must be positive")

    return gate_models(opts.baseline_model, opts.current_model, opts.settings, backend=opts.runtime,
                       timing={"time_budget_s": opts.budget_s, "target_ci": opts.target_ci}, threads=opts.threads,
                       input_size=opts.input_size, data=opts.data, quality=opts.quality,
                       input_shapes=list(opts.input_shapes))


def write_outputs(result: GateResult, opts: GateOptions, echo) -> None:
    """Files named by the options, plus $GITHUB_STEP_SUMMARY and annotations inside GitHub Actions."""
    text = markdown(result)
    if opts.markdown:
        write_atomic(opts.markdown, text)
    if opts.junit:
        write_atomic(opts.junit, junit_xml(result))
    if opts.json:
        write_atomic(opts.json, json_text(result))
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if in_actions and summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text)
    if opts.annotations == "always" or (opts.annotations == "auto" and in_actions):
        for line in github_annotations(result):
            echo(line)


def finish(result: GateResult) -> None:
    if not result.passed:
        raise RegressionFound(result.summary_line())
