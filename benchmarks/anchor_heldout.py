"""Held-out test of the device estimator: published figures it was never tuned on (issue 14).

    python benchmarks/anchor_heldout.py --name fresh   # pure computation over published figures: any load (seconds)

benchmarks/results/anchor_validation.md scores the estimator leave-one-anchor-out on the very
anchors its forms were chosen on, so its figure is optimistic by that choice. This scores it on
published latencies that played no part in any choice: the `figures:` of
benchmarks/heldout_figures.yaml, models the anchors do not use, from the same runs (source,
section, command line, column) as the anchors. Each figure is predicted from the anchors of its
profile with identical runtime, processor, precision, threads, batch and machine
(`anchor_hardware.comparable`, the rule the hardware view uses), by the estimator's own transfer
and ratio (`anchors.transfer`, `anchors.roofline_ratio`: the roofline on the device's derated
peaks with the shape fitted on every shipped anchor, as `compare` uses it). Nothing here fits,
tunes or chooses anything.

The first set was scored on 2026-11-30 and its faithful figures were then adopted as anchors
(benchmarks/results/anchor_heldout.md stays the record of that test). A figure that is also an
anchor of its profile is refused, never scored against itself. The fresh set waited unscored under
`fresh:` until the next change of the estimator's form was fixed, then moved to `figures:`;
`--name NAME` writes benchmarks/results/anchor_heldout-NAME.{json,md}, so one set's record never
overwrites another's. A figure from a run that no anchor comes from (the fresh set's runs: the
ncnn README's replaced runs of the anchors' models, each with a `device_detail` of its own) is
predicted from the other figures of its own run instead, by the same rule (leave-one-figure-out
within the run): what that tests is the estimator's ratios between models on one machine, with no
run-to-run offset in it. With no figures to score it says so and writes nothing.
"""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "benchmarks" / "heldout_figures.yaml"

HOW = ("each held-out figure predicted from its profile's anchors with identical runtime, processor, "
       "precision, threads, batch and machine (anchor_hardware.comparable), or, where no anchor comes from its "
       "run, from the other held-out figures of its run by the same rule: the geometric mean over them of "
       "anchor latency x roofline ratio (anchors.transfer, anchors.roofline_ratio), the roofline on the "
       "device's derated datasheet peaks with the shape fitted on every shipped anchor of the processor class "
       "(the figure is no anchor, so the fit never sees it); reference-model op costs from "
       "edgebench/estimate/reference_ops.json")
HELD_OUT = ("These figures were not used to choose any form or constant of the estimator: the first set was "
            "collected and scored after every choice listed in benchmarks/results/anchor_validation.md, with the "
            "estimator unchanged; the fresh set was collected and committed before the Winograd shape parameter "
            "(the last entry there) was tried, kept unscored while it was chosen on the anchors only, and scored "
            "once after. Changing the estimator after seeing them would end their use as a held-out test.")
# The sections of heldout_figures.yaml that list figures ({device: [figure, ...]}): only `figures`
# is scored; `fresh` waits unscored for the next form change; `adopted` and `not_adopted` are the
# record of the first set (the former now anchors in device_profiles/).
SECTIONS = ("figures", "fresh", "adopted", "not_adopted")


def load_figures(path: Path = FIGURES) -> dict:
    """{"counterparts": ..., "left_out": ..., "figures": {device: [Anchor, ...]}, "fresh": ..., ...}:
    each section of SECTIONS as Anchors, empty where the file has none."""
    import yaml

    from edgebench.devices.profiles import Anchor

    data = yaml.safe_load(path.read_text())
    for section in SECTIONS:
        data[section] = {device: [Anchor(**f) for f in figures or []]
                         for device, figures in (data.get(section) or {}).items()}
    return data


def same_figure_key(figure) -> tuple:
    """What makes two published figures the same one: the model and every label of its run."""
    return (figure.model, figure.input_size, figure.runtime, figure.processor, figure.precision, figure.threads,
            figure.batch, figure.device_detail)


def already_anchors(figures: dict) -> list[str]:
    """The figures to score that are also anchors of their profile ("device model (runtime, ...)")."""
    from edgebench.devices.profiles import all_profiles

    profiles, out = all_profiles(), []
    for device, device_figures in figures.items():
        anchored = {same_figure_key(a) for a in profiles[device].anchors}
        out += [f"{device} {f.model} ({f.runtime}, {f.processor}, {f.precision}, threads {f.threads})"
                for f in device_figures if same_figure_key(f) in anchored]
    return out


def count(section: dict) -> int:
    return sum(len(v) for v in section.values())


def nothing_to_score(data: dict) -> str:
    return (f"No held-out figures left to score: the first set's {count(data['adopted'])} faithful figures were "
            "adopted as anchors on 2026-11-30 after being scored (benchmarks/results/anchor_heldout.md is the "
            f"record of that test and is left as it is; nothing written). {count(data['fresh'])} fresh figure(s) "
            "wait unscored under `fresh:` in benchmarks/heldout_figures.yaml: move them to `figures:` once the "
            "next change of the estimator's form is fixed, and score them then.")


def run_label(figure) -> str:
    """The run a figure belongs to, as its source names it (without the row)."""
    return figure.source.rsplit(", row ", 1)[0]


def predict_figure(profile, figure, ratio, run_figures: tuple = ()) -> dict:
    """One held-out figure predicted from `profile`'s comparable anchors with `ratio`
    (anchors.roofline_ratio(profile)), or where none is comparable (a run no anchor comes from) from
    the comparable ones of `run_figures` (the held-out figures of its device; never itself: a
    comparable figure is of another model); `predicted_ms` None with the reason where it cannot be."""
    from edgebench.estimate.anchor_hardware import anchor_hardware, buildable, comparable
    from edgebench.estimate.anchors import transfer

    peers = [b for b in profile.anchors if buildable(b) and comparable(figure, b)]
    from_run = not peers
    if from_run:
        peers = [b for b in run_figures if buildable(b) and comparable(figure, b)]
    row = {"device": profile.name, "model": figure.model, "input_size": figure.input_size,
           "runtime": figure.runtime, "processor": figure.processor, "precision": figure.precision,
           "threads": figure.threads, "published_ms": figure.latency_ms, "from": sorted(b.model for b in peers),
           "run": run_label(figure), "reliability": figure.reliability, "source": figure.source, "note": figure.note,
           "transferred_from": "held-out figures of its own run" if from_run else "anchors of its run"}
    reason = None
    if not buildable(figure):
        reason = "no shipped op costs for this model and size (python benchmarks/reference_ops.py --add-missing)"
    elif not peers:
        reason = "no anchor of the same run to transfer from"
    elif anchor_hardware(profile, figure) is None:
        reason = f"the profile states no peaks for processor '{figure.processor}'"
    predicted = transfer(peers, partial(ratio, figure)) if reason is None else None
    if predicted is None or not figure.latency_ms:
        return dict(row, predicted_ms=None, error=None, not_predicted=reason or "no ratio")
    return dict(row, predicted_ms=round(predicted, 4), error=round(predicted / figure.latency_ms - 1, 4))


def score(figures: dict) -> list[dict]:
    from edgebench.devices.profiles import all_profiles
    from edgebench.estimate.anchors import roofline_ratio

    profiles = all_profiles()
    rows = []
    for device, device_figures in figures.items():
        profile = profiles[device]
        ratio = roofline_ratio(profile)  # one shape fit per processor class, shared by the device's figures
        rows += [predict_figure(profile, f, ratio, tuple(device_figures)) for f in device_figures]
    return rows


def stated_interval_check(figures: dict) -> list[dict]:
    """Each held-out figure of a group `compare` states an error for (anchors.check, an edgebench
    runtime, validated): its estimate as `compare` makes it and whether the published figure lies
    in the interval compare states, estimate/(1+e) .. estimate x (1+e)."""
    import math

    from edgebench.devices.profiles import all_profiles
    from edgebench.estimate.anchor_hardware import anchor_ops, buildable
    from edgebench.estimate.anchors import check, edgebench_runtimes

    profiles, groups, out = all_profiles(), {}, []
    for device, device_figures in figures.items():
        for f in device_figures:
            runtimes = edgebench_runtimes(f)
            if not runtimes or not buildable(f) or not f.latency_ms:
                continue
            group = (device, runtimes[0], f.processor, f.precision)
            if group not in groups:
                groups[group] = check(profiles[device], *group[1:])
            found = groups[group]
            if found.error is None or f.threads is not None:
                continue  # unvalidated, or a run on stated threads (compare's anchors ran on every core)
            predicted = found.predict(anchor_ops(f))
            if predicted is None:
                continue
            out.append({"device": device, "runtime": group[1], "processor": f.processor, "precision": f.precision,
                        "model": f.model, "published_ms": f.latency_ms, "predicted_ms": round(predicted, 4),
                        "error": round(predicted / f.latency_ms - 1, 4), "stated_error": round(found.error, 4),
                        "inside": abs(math.log(predicted / f.latency_ms)) <= math.log1p(found.error)})
    return out


def summaries(rows: list[dict], by: str) -> dict:
    from edgebench.estimate.anchors import summarize_errors

    keys = sorted({r[by] for r in rows}, key=str)
    return {str(k): summarize_errors([r for r in rows if r[by] == k]) for k in keys}


class NotHeldOut(ValueError):
    """A figure to score is also an anchor: scoring it would predict an anchor from itself."""


def result_stem(name: Optional[str]) -> str:
    """anchor_heldout (the first set's record) or anchor_heldout-NAME."""
    if name is not None and not (name.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"--name takes letters, digits, '-' and '_' only, not {name!r}")
    return "anchor_heldout" + (f"-{name}" if name else "")


def run_heldout(out_dir: Path = RESULTS, path: Path = FIGURES, name: Optional[str] = None) -> Optional[dict]:
    """Score the `figures:` of `path` and write the results (anchor_heldout[-NAME].{json,md}); None
    (nothing written) when there are none."""
    from edgebench.estimate.anchors import summarize_errors

    data = load_figures(path)
    if not count(data["figures"]):
        return None
    clash = already_anchors(data["figures"])
    if clash:
        raise NotHeldOut("these figures are anchors of their profile, so no held-out test (adopted figures "
                         "belong under `adopted:`): " + "; ".join(clash))
    faithful = {m for m, c in data["counterparts"].items() if c["faithful"]}
    rows = score(data["figures"])
    for r in rows:
        r["faithful_counterpart"] = r["model"] in faithful
        r["peers"] = len(r["from"])
    predicted = [r for r in rows if r["predicted_ms"] is not None]
    headline = [r for r in predicted if r["faithful_counterpart"]]
    for r in headline:
        r["peer_count"] = "1 anchor" if r["peers"] == 1 else "2 or more anchors"
    result = {"benchmark": "anchor_heldout", "held_out": HELD_OUT, "method": HOW,
              "goal": ">= 80% within +-25% (the goal anchor_validation.md states)",
              "overall": summarize_errors(headline), "devices": summaries(headline, "device"),
              "models": summaries(headline, "model"), "peer_counts": summaries(headline, "peer_count"),
              "runtimes": summaries(headline, "runtime"), "transferred_from": summaries(headline, "transferred_from"),
              "approximate_counterparts": summarize_errors([r for r in predicted if not r["faithful_counterpart"]]),
              "stated_interval": stated_interval_check(data["figures"]),
              "leave_one_anchor_out": _validation_overall(),
              "figures": rows, "counterparts": data["counterparts"], "left_out": data["left_out"],
              "note": "pure computation over published figures: independent of this machine's load"}
    stem = result_stem(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown(result, stem))
    return result


def _validation_overall() -> Optional[dict]:
    """The leave-one-anchor-out overall of benchmarks/results/anchor_validation.json, for comparison."""
    path = RESULTS / "anchor_validation.json"
    return json.loads(path.read_text())["overall"] if path.is_file() else None


def _pct(s: dict) -> str:
    if s.get("within_25pct") is None:
        return f"| {s.get('n', 0)} | - | - | - |"
    return (f"| {s['n']} | {100 * s['within_25pct']:.0f}% | {s['median_abs_pct']:.0f}% | "
            f"±{s['interval_error_pct']:.0f}% |")


def _table(title: str, column: str, groups: dict) -> list[str]:
    lines = ["", f"## {title}", "", f"| {column} | figures | within ±25% | median abs err | 90% interval |",
             "|---|---|---|---|---|"]
    return lines + [f"| {k} {_pct(s)}" for k, s in groups.items()]


def _figure_line(r: dict) -> str:
    predicted = f"{r['predicted_ms']:.3g} | {100 * r['error']:+.0f}%" if r["predicted_ms"] is not None else "- | -"
    return (f"| {r['device']} | {r['model']} | {r['runtime']} | {r['processor']} | {r['precision']} | "
            f"{r['threads'] or '-'} | {r['published_ms']:.3g} | {predicted} | {', '.join(r['from']) or '-'} | "
            f"{r['source'].replace('|', '/')} |")


def markdown(result: dict, stem: str = "anchor_heldout") -> str:
    o = result["overall"]
    head = (f"{o['n']} held-out figures predicted, {100 * o['within_25pct']:.0f}% within ±25%, median |error| "
            f"{o['median_abs_pct']:.0f}%, 90% of them within ±{o['interval_error_pct']:.0f}% "
            f"(goal: {result['goal']})." if o.get("within_25pct") is not None else f"{o.get('n', 0)} predicted.")
    lines = ["# Device estimates against held-out published figures", "",
             f"Rerun: `python benchmarks/anchor_heldout.py{rerun_flag(stem)}` (pure computation, seconds). "
             "Figures and their sources: benchmarks/heldout_figures.yaml.", "",
             f"**Held out.** {result['held_out']}", "",
             f"Method: {result['method']}.", "",
             "Headline (faithful torchvision counterparts only, decided before scoring): " + head]
    v = result.get("leave_one_anchor_out")
    if v and v.get("within_25pct") is not None:
        lines += ["", f"For comparison, leave-one-anchor-out on the shipped anchors (benchmarks/results/"
                  f"anchor_validation.md, the figures the forms were chosen on): {v['n']} anchors, "
                  f"{100 * v['within_25pct']:.0f}% within ±25%, median |error| {v['median_abs_pct']:.0f}%."]
    a = result["approximate_counterparts"]
    if a.get("n"):
        lines += ["", "Approximate counterparts (googlenet: see the counterparts below), apart: "
                  + (f"{a['n']} figures, {100 * a['within_25pct']:.0f}% within ±25%, median |error| "
                     f"{a['median_abs_pct']:.0f}%." if a.get("within_25pct") is not None else f"{a['n']} figures.")]
    lines += _table("Per device", "device", result["devices"])
    lines += _table("Per model", "model", result["models"])
    lines += _table("Per runtime", "runtime", result["runtimes"])
    lines += _table("By the anchors a figure is transferred from", "transferred from", result["peer_counts"])
    lines += _table("By what a figure is transferred from", "transferred from", result.get("transferred_from", {}))
    inside = result.get("stated_interval") or []
    if inside:
        lines += ["", "## The error `compare` states, against the held-out figures", "",
                  f"Where `compare` states an error (an edgebench runtime with validated anchors: "
                  f"anchors.check), the published figure lies inside the stated interval for "
                  f"{sum(r['inside'] for r in inside)} of {len(inside)} held-out figures.", "",
                  "| device | runtime | processor | precision | model | published ms | estimate ms | error | "
                  "stated error | inside |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['device']} | {r['runtime']} | {r['processor']} | {r['precision']} | {r['model']} | "
                  f"{r['published_ms']:.3g} | {r['predicted_ms']:.3g} | {100 * r['error']:+.0f}% | "
                  f"±{100 * r['stated_error']:.0f}% | {'yes' if r['inside'] else 'no'} |" for r in inside]
    lines += ["", "## Counterparts", ""]
    for model, c in result["counterparts"].items():
        lines.append(f"- {model} ({'faithful' if c['faithful'] else 'approximate: not in the headline'}): "
                     f"{c['published_as']}; differences: {c['differences']}.")
    lines += ["", "Left out:", ""] + [f"- {x['what']}: {x['why']}." for x in result["left_out"]]
    header = ["| device | model | runtime | processor | precision | threads | published ms | predicted ms | error | "
              "from | source |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    faithful = [r for r in result["figures"] if r["faithful_counterpart"] and r["predicted_ms"] is not None]
    lines += ["", "## Every held-out figure (faithful counterparts)", ""] + header + [_figure_line(r) for r in faithful]
    rest = [r for r in result["figures"] if not r["faithful_counterpart"] and r["predicted_ms"] is not None]
    if rest:
        lines += ["", "## Approximate counterparts (not in the headline)", ""] + header + [_figure_line(r) for r in rest]
    missing = [r for r in result["figures"] if r["predicted_ms"] is None]
    if missing:
        lines += ["", "## Not predicted", ""] + [f"- {r['device']} {r['model']} ({r['runtime']}, {r['processor']}, "
                                                 f"{r['precision']}): {r['not_predicted']}" for r in missing]
    return "\n".join(lines) + "\n"


def rerun_flag(stem: str) -> str:
    return f" --name {stem.split('-', 1)[1]}" if "-" in stem else ""


def main(argv: Optional[list] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="write benchmarks/results/anchor_heldout-NAME.{json,md} (default: "
                                       "anchor_heldout.{json,md}, the first set's record)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        stem = result_stem(args.name)
        found = run_heldout(out_dir=args.out, name=args.name)
    except (NotHeldOut, ValueError) as e:
        sys.exit(f"anchor_heldout: {e}")
    print(nothing_to_score(load_figures()) if found is None else (args.out / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
