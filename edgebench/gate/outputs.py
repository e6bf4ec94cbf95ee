"""The gate's verdict in the forms CI reads: a Markdown pull-request comment, JUnit XML, GitHub
Actions workflow commands (annotations), and JSON. Names come from user files, so every format
escapes them its own way."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from edgebench.core.markdown import md
from edgebench.gate.verdict import Check, Comparison, GateResult

ICON = {"regression": "❌", "noisy": "〰️", "improvement": "🚀", "pass": "✅", "skipped": "➖"}



def _check(comparison: Comparison, kind: str) -> Check:
    return next(c for c in comparison.checks if c.kind == kind)


def _latency_cell(check: Check) -> str:
    r = check.latency
    if r is None:
        return md(check.detail) if check.detail else "–"
    return (f"{r.baseline_ms:.4g} → {r.current_ms:.4g} ms<br>**{r.change_pct:+.1f}%** "
            f"[{(r.ci_low - 1) * 100:+.1f}%, {(r.ci_high - 1) * 100:+.1f}%]")


def _value_cell(check: Check, fmt: str) -> str:
    if check.baseline is None or check.current is None:
        return "–"
    return f"{check.baseline:{fmt}} → {check.current:{fmt}} {check.unit}"


def _quality_cell(check: Check) -> str:
    """The accuracy column names its metric: top-1 on labels, or agreement with the baseline."""
    if "agreement" in check.metric:
        return "–" if check.current is None else f"{md(check.metric)} {check.current:.4f}"
    cell = _value_cell(check, ".2f")
    return cell if cell == "–" or not check.metric else f"{md(check.metric)} {cell}"


def _name(check: Check) -> str:
    return f"{check.kind} ({check.metric})" if check.metric else check.kind


def markdown(result: GateResult) -> str:
    s = result.settings
    head = "❌ **edgebench gate: regression**" if not result.passed else "✅ **edgebench gate: passed**"
    gated = sorted({k.metric for c in result.comparisons for k in c.checks if "agreement" in k.metric})
    agreement = (f" ({', '.join(gated)} of the current model with the baseline's outputs must stay at least "
                 f"{s.min_agreement:g})") if gated else ""
    lines = [head, "",
             f"Baseline `{md(result.baseline)}` vs current `{md(result.current)}` ({result.mode}). "
             f"A latency regression must exceed **{s.max_slowdown:.1%}** on **{s.metric}** and be significant "
             f"(one-sided {'Mann-Whitney U' if s.metric == 'p50' else 'bootstrap'} p < {s.alpha:g} and the "
             f"{s.confidence:.0%} bootstrap CI of the ratio above 1); accuracy may drop {s.max_accuracy_drop:g} "
             f"points{agreement}; size may grow {s.max_size_increase:.1%}.",
             "",
             f"| candidate | runtime | processor | precision | device | {s.metric} latency | p | quality | "
             "size | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in result.comparisons:
        lat, acc, size = _check(c, "latency"), _check(c, "accuracy"), _check(c, "size")
        p = f"{lat.latency.p_value:.2g}" if lat.latency else "–"
        verdicts = ", ".join(f"{_name(k)} {k.verdict}" for k in c.checks if k.verdict not in ("pass", "skipped"))
        lines.append(f"| {md(c.candidate)} | {md(c.backend)} | {md(c.processor)} | {md(c.precision)} | "
                     f"{md(c.device)} | {_latency_cell(lat)} | {p} | {_quality_cell(acc)} | "
                     f"{_value_cell(size, '.3f')} | {ICON[c.verdict]} {md(verdicts or c.verdict)} |")
    lines.append("")
    lines.append("Latency cells: baseline → current, change and its confidence interval. "
                 "〰️ noisy: beyond the threshold but not significant; not a failure.")
    if result.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {md(w)}" for w in result.warnings]
    for title, keys in (("Only in baseline", result.only_in_baseline), ("Only in current", result.only_in_current)):
        if keys:
            lines += ["", f"<details><summary>{title} ({len(keys)}), not compared</summary>", ""]
            lines += [f"- {md(k)}" for k in keys] + ["", "</details>"]
    if result.gate_s is not None:
        lines += ["", f"Gate time: {result.gate_s:.1f} s."]
    return "\n".join(lines) + "\n"


def junit_xml(result: GateResult) -> str:
    """One test case per comparison and check; a regression is a failure, a skipped check is skipped."""
    suite = ET.Element("testsuite", name="edgebench-gate", tests=str(sum(len(c.checks) for c in result.comparisons)),
                       failures=str(len(result.regressions)),
                       skipped=str(sum(k.verdict == "skipped" for c in result.comparisons for k in c.checks)))
    if result.gate_s is not None:
        suite.set("time", f"{result.gate_s:.3f}")
    for c in result.comparisons:
        for k in c.checks:
            case = ET.SubElement(suite, "testcase", classname=c.label, name=_name(k))
            if k.verdict == "regression":
                ET.SubElement(case, "failure", message=f"{_name(k)} regression: {k.detail}", type="regression").text = \
                    k.detail
            elif k.verdict == "skipped":
                ET.SubElement(case, "skipped", message=k.detail)
            else:
                ET.SubElement(case, "system-out").text = f"{k.verdict}: {k.detail}"
    if result.warnings:
        ET.SubElement(suite, "system-err").text = "\n".join(result.warnings)
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _gh_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: GateResult) -> list[str]:
    """Workflow commands: an error per regression, a warning per noisy check and per warning."""
    lines = []
    for c in result.comparisons:
        for k in c.checks:
            if k.verdict == "regression":
                lines.append(f"::error title={_gh_property('edgebench gate: ' + _name(k) + ' regression')}::"
                             f"{_gh_data(c.label + ': ' + k.detail)}")
            elif k.verdict == "noisy":
                lines.append(f"::warning title={_gh_property('edgebench gate: noisy ' + k.kind)}::"
                             f"{_gh_data(c.label + ': ' + k.detail + ' (beyond the threshold, not significant)')}")
    for w in result.warnings:
        lines.append(f"::warning title={_gh_property('edgebench gate: environment')}::{_gh_data(w)}")
    return lines


def json_text(result: GateResult) -> str:
    data = result.to_dict()
    if result.measurements:
        data["measurements"] = [m.to_dict() for m in result.measurements]
    return json.dumps(data, indent=2, default=str) + "\n"


def console_table(result: GateResult):
    """A rich Table for the terminal; names are escaped so a '[' in a file name is not markup."""
    from rich.markup import escape
    from rich.table import Table

    colour = {"regression": "red", "noisy": "yellow", "improvement": "green", "pass": "green", "skipped": "dim"}
    table = Table(title=f"edgebench gate ({result.mode}, {result.settings.metric}, "
                        f"max slowdown {result.settings.max_slowdown:.1%})")
    for col in ("candidate / runtime / processor / precision / device", "latency", "accuracy", "size", "verdict"):
        table.add_column(col, overflow="fold")
    for c in result.comparisons:
        cells = [escape(_check(c, kind).detail) for kind in ("latency", "accuracy", "size")]
        table.add_row(escape(c.label), *cells, f"[{colour[c.verdict]}]{c.verdict}")
    return table
