"""CI regression verdict: is the current run slower, less accurate or larger than the baseline?

Measurements are matched per candidate x runtime x processor x precision x device (x batch), by
candidate name, so the same recipe matches across runs even when its lineage hash changed. Each
match gets three checks:

- latency: threshold *and* significance (gate_stats.compare_latency) on the gated percentile;
- accuracy: top-1 drop in percentage points on the deployed artifact; or, for models without
  labels (interleaved mode, `--quality agreement`), the current model's agreement with the
  baseline model's outputs on the same inputs, which must not fall below `min_agreement`;
- size: growth of the artifact file the runtime loads.

Latency is never compared across different hardware (gate_inputs.refuse_across_devices).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from edgebench.backends import BACKENDS
from edgebench.core.errors import IncompatibleError, NothingToCompareError
from edgebench.core.records import Measurement
from edgebench.gate.inputs import GateRun, refuse_across_devices
from edgebench.gate.stats import LatencyComparison, compare_latency
from edgebench.measure.contention import busy_text, is_busy

FAILING = ("regression",)


@dataclass(frozen=True)
class GateSettings:
    metric: str = "p50"
    max_slowdown: float = 0.05  # fraction
    max_accuracy_drop: float = 1.0  # percentage points of top-1
    max_size_increase: float = 0.05  # fraction
    min_agreement: float = 0.99  # agreement with the baseline's outputs: top-1 agreement for class scores, else cosine
    alpha: float = 0.002  # asv's threshold for its Mann-Whitney test
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0


@dataclass
class Check:
    kind: str  # latency | accuracy | size
    verdict: str  # pass | regression | improvement | noisy | skipped
    baseline: Optional[float] = None
    current: Optional[float] = None
    unit: str = ""
    detail: str = ""
    latency: Optional[LatencyComparison] = None
    metric: str = ""  # what the values are: "top-1", "cosine agreement", "top-1 agreement", ...


@dataclass
class Comparison:
    """One candidate x runtime x processor x precision x device, with its checks."""
    candidate: str
    backend: str
    processor: str
    precision: str
    device: str
    batch_size: int
    checks: list[Check] = field(default_factory=list)
    scenario: str = "single-stream"
    shape: Optional[str] = None

    @property
    def label(self) -> str:
        return _key_text((self.candidate, self.backend, self.processor, self.precision, self.device, self.batch_size,
                          self.scenario, self.shape))

    @property
    def verdict(self) -> str:
        verdicts = [c.verdict for c in self.checks]
        for v in ("regression", "noisy", "improvement", "pass"):
            if v in verdicts:
                return v
        return "skipped"


@dataclass
class GateResult:
    baseline: str
    current: str
    settings: GateSettings
    comparisons: list[Comparison]
    warnings: list[str]
    only_in_baseline: list[str]
    only_in_current: list[str]
    mode: str = "runs"  # runs | interleaved
    gate_s: Optional[float] = None
    measurements: list = field(default_factory=list)  # interleaved mode: what was measured, with samples
    environments: dict = field(default_factory=dict)  # role -> environment fingerprint

    @property
    def regressions(self) -> list[tuple[Comparison, Check]]:
        return [(c, k) for c in self.comparisons for k in c.checks if k.verdict in FAILING]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def summary_line(self) -> str:
        if self.passed:
            return f"gate passed: {len(self.comparisons)} comparison(s), no regression"
        parts = [f"{c.label}: {k.kind} ({k.metric}) {k.detail}" if k.metric else f"{c.label}: {k.kind} {k.detail}"
                 for c, k in self.regressions[:3]]
        more = f" (+{len(self.regressions) - 3} more)" if len(self.regressions) > 3 else ""
        return f"gate failed: {len(self.regressions)} regression(s): " + "; ".join(parts) + more

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "current": self.current, "mode": self.mode, "passed": self.passed,
                "settings": asdict(self.settings), "warnings": self.warnings, "gate_s": self.gate_s,
                "only_in_baseline": self.only_in_baseline, "only_in_current": self.only_in_current,
                "environments": self.environments,
                "comparisons": [dict(asdict(c), verdict=c.verdict, label=c.label) for c in self.comparisons]}


def match_key(run: GateRun, m: Measurement) -> tuple:
    c = run.candidates.get(m.candidate)
    # Scenario and shape too: an offline row and a single-stream row of one model are different figures.
    return (c.name if c else m.candidate, m.backend, m.processor, m.precision, m.device, m.batch_size, m.scenario,
            m.shape)


def evaluate(baseline: GateRun, current: GateRun, settings: GateSettings = GateSettings()) -> GateResult:
    warnings = refuse_across_devices(baseline, current)
    base = {match_key(baseline, m): m for m in baseline.measurements}
    cur = {match_key(current, m): m for m in current.measurements}
    if not base:
        raise NothingToCompareError(f"baseline '{baseline.label}' has no successful measurement")
    if not cur:
        raise NothingToCompareError(f"current '{current.label}' has no successful measurement")
    common = sorted(set(base) & set(cur), key=str)
    if not common:
        devices_b, devices_c = {k[4] for k in base}, {k[4] for k in cur}
        if not devices_b & devices_c:
            raise IncompatibleError(f"refusing a latency verdict across different devices: baseline is for "
                                    f"{', '.join(sorted(devices_b))}, current for {', '.join(sorted(devices_c))}")
        raise NothingToCompareError(
            f"baseline and current share no candidate x runtime x processor x precision; baseline has "
            f"{_names(base)}, current has {_names(cur)}")
    if not any(_shared_block(base[k], cur[k]) for k in common):
        warnings.append("baseline and current were timed in separate sessions: load that changed between them is "
                        "not in the confidence intervals; on a shared runner prefer --baseline-model/--current-model, "
                        "which times both interleaved")
    threads = sorted({f"{_key_text(k)}: {base[k].threads} vs {cur[k].threads}" for k in common
                      if base[k].threads != cur[k].threads})
    if threads:
        warnings.append("runtime threads differ (baseline vs current): " + "; ".join(threads[:3]))
    busy = sorted({_key_text(k) for k in common if is_busy(base[k].extra) or is_busy(cur[k].extra)})
    if busy:
        warnings.append(f"{len(busy)} comparison(s) rest on figures measured while the machine was busy; their "
                        "latency verdicts are unreliable (see each check)")
    comparisons = []
    for key in common:
        b, c = base[key], cur[key]
        hw_b, hw_c = baseline.hardware_of(b), current.hardware_of(c)
        if hw_b and hw_c and hw_b != hw_c:  # per row: a resumed run's rows may come from different sessions
            raise IncompatibleError(f"refusing a latency verdict across different devices: {_key_text(key)} was "
                                    f"measured on {hw_b} in the baseline and on {hw_c} in the current run")
        comparison = Comparison(candidate=key[0], backend=key[1], processor=key[2], precision=key[3], device=key[4],
                                batch_size=key[5], scenario=key[6], shape=key[7])
        comparison.checks = [latency_check(b, c, settings), accuracy_check(b, c, settings),
                             size_check(baseline, b, current, c, settings)]
        comparisons.append(comparison)
    return GateResult(baseline=baseline.label, current=current.label, settings=settings, comparisons=comparisons,
                      environments={"baseline": baseline.environment, "current": current.environment},
                      warnings=warnings, only_in_baseline=[_key_text(k) for k in sorted(set(base) - set(cur), key=str)],
                      only_in_current=[_key_text(k) for k in sorted(set(cur) - set(base), key=str)])


def latency_check(b: Measurement, c: Measurement, s: GateSettings) -> Check:
    if b.source != "measured" or c.source != "measured":
        return Check("latency", "skipped", detail="estimated, not measured: no latency verdict on estimates")
    if len(b.samples_ms) < 5 or len(c.samples_ms) < 5:
        return Check("latency", "skipped", detail="fewer than 5 latency samples stored")
    block = _shared_block(b, c)
    busy = [f"{role}: {busy_text(m.extra)}" for role, m in (("baseline", b), ("current", c)) if is_busy(m.extra)]
    result = compare_latency(np.asarray(b.samples_ms), np.asarray(c.samples_ms), metric=s.metric,
                             max_slowdown=s.max_slowdown, alpha=s.alpha, confidence=s.confidence,
                             resamples=s.resamples, seed=s.seed, block=block)
    detail = (f"{s.metric} {result.baseline_ms:.4g} -> {result.current_ms:.4g} ms ({result.change_pct:+.1f}%, "
              f"{result.confidence:.0%} CI of ratio {result.ci_low:.3f}..{result.ci_high:.3f}, "
              f"{result.test.split(',')[0]} p={result.p_value:.2g})")
    if busy and block is None:
        # The verdict stands (a gate that passes whenever a neighbour is busy hides regressions),
        # but it says it rests on unreliable figures.
        detail = ("UNRELIABLE, measured while the machine was busy (" + "; ".join(busy) + "); rerun on a quiet "
                  "machine or time both interleaved: " + detail)
    elif busy:  # interleaved: the load fell on both alike, so the verdict stands, with less certainty
        detail += "; the machine was busy during the session (" + "; ".join(busy) + "), so this is less certain"
    return Check("latency", result.verdict, result.baseline_ms, result.current_ms, "ms", detail, result)


def _shared_block(b: Measurement, c: Measurement) -> Optional[int]:
    """Block size when both were measured interleaved in the same session (rounds pair up)."""
    sb, sc = b.extra.get("interleaved_session"), c.extra.get("interleaved_session")
    if sb and sb == sc and b.extra.get("block_iterations") == c.extra.get("block_iterations"):
        return int(b.extra["block_iterations"])
    return None


def accuracy_check(b: Measurement, c: Measurement, s: GateSettings) -> Check:
    if is_baseline_agreement(c.quality):
        return agreement_check(c.quality or {}, s)
    if b.top1 is None or c.top1 is None:
        return Check("accuracy", "skipped", detail="not scored in both runs")
    drop = (b.top1 - c.top1) * 100.0
    detail = f"top-1 {b.top1 * 100:.2f}% -> {c.top1 * 100:.2f}% ({-drop:+.2f} points)"
    if (b.accuracy or {}).get("total") != (c.accuracy or {}).get("total"):
        detail += "; scored on eval sets of different sizes"
    verdict = "regression" if drop > s.max_accuracy_drop else "improvement" if -drop > s.max_accuracy_drop else "pass"
    return Check("accuracy", verdict, b.top1 * 100, c.top1 * 100, "%", detail, metric="top-1")


def is_baseline_agreement(quality: Optional[dict]) -> bool:
    """Agreement measured against the baseline model in this session (interleaved), not a run's
    agreement with its own FP32 reference, which says nothing about the baseline."""
    return bool(quality) and (quality or {}).get("extra", {}).get("reference") == "baseline"


def gated_agreement(quality: dict) -> tuple[str, Optional[float], str]:
    """(metric name, value, output) gated for an agreement record: compare's per-output rows, on the
    first output; top-1 agreement where that output looks like class scores, else cosine similarity."""
    first = (quality.get("per_output") or [{}])[0]
    output = str(first.get("output", "?"))
    if "top1_agreement" in first:
        return "top-1 agreement", float(first["top1_agreement"]), output
    cosine = first.get("cosine")
    return "cosine agreement", float(cosine) if cosine is not None else None, output


def agreement_check(quality: dict, s: GateSettings) -> Check:
    metric, value, output = gated_agreement(quality)
    samples = quality.get("samples", 0)
    if quality.get("metric") != "agreement" or value is None:
        reason = quality.get("reason") or "no agreement figure"
        return Check("accuracy", "regression", detail=f"current outputs do not match the baseline's: {reason}",
                     metric=metric)
    first = (quality.get("per_output") or [{}])[0]
    sqnr = first.get("sqnr_db")
    extra = "identical outputs" if first.get("identical") else f"SQNR {sqnr:.1f} dB" if sqnr is not None else ""
    detail = (f"{metric} with the baseline {value:.4f} on output '{output}' over {samples} sample(s) "
              f"(min {s.min_agreement:g}" + (f"; {extra})" if extra else ")"))
    verdict = "regression" if value < s.min_agreement else "pass"
    return Check("accuracy", verdict, 1.0, value, "", detail, metric=metric)


def size_check(base_run: GateRun, b: Measurement, cur_run: GateRun, c: Measurement, s: GateSettings) -> Check:
    size_b, size_c = artifact_bytes(base_run, b), artifact_bytes(cur_run, c)
    if not size_b or not size_c:
        return Check("size", "skipped", detail="artifact size not recorded in both runs")
    growth = size_c / size_b - 1.0
    detail = f"{size_b / 1e6:.3f} -> {size_c / 1e6:.3f} MB ({growth * 100:+.1f}%)"
    verdict = "regression" if growth > s.max_size_increase else \
        "improvement" if growth < -s.max_size_increase else "pass"
    return Check("size", verdict, size_b / 1e6, size_c / 1e6, "MB", detail)


def artifact_bytes(run: GateRun, m: Measurement) -> Optional[int]:
    if m.extra.get("artifact_bytes"):
        return int(m.extra["artifact_bytes"])
    c = run.candidates.get(m.candidate)
    if not c or not c.file_bytes:
        return None
    fmt = BACKENDS.get(m.backend).deployed_format(c.file_bytes) if m.backend in BACKENDS else None
    return c.file_bytes.get(fmt or "onnx") or None


def _key_text(key: tuple) -> str:
    return (" / ".join(str(k) for k in key[:5]) + (f" / batch {key[5]}" if key[5] != 1 else "")
            + (f" / {key[6]}" if key[6] != "single-stream" else "") + (f" / {key[7]}" if key[7] else ""))


def _names(keys: dict) -> str:
    shown = sorted({_key_text(k) for k in keys})
    return ", ".join(shown[:4]) + (f" (+{len(shown) - 4} more)" if len(shown) > 4 else "")
