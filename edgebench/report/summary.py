"""The answer a report leads with: which candidate to ship for each chart, and why.

Latencies are compared only inside one group (device / processor / input shape / batch /
scenario, measured or estimated; an offline group is ranked on throughput): a figure taken on
this machine and an estimate for a Jetson are not on the same scale.

The quality axis is whatever the row's quality is (report/table.py `quality_fields`): top-1 on
labels, agreement with FP32, or a user metric, and every sentence names it. No pick is made from
unmeasured quality, and none at or below chance (a top-1 no better than guessing).
"""
from __future__ import annotations

from typing import Optional

from edgebench.report.pareto import pareto_front, rank_ms

ACCURACY_TOLERANCE = 0.01  # a candidate within 1 point of the best accuracy counts as "as accurate"
# Agreement is a cosine similarity: 0.001 below the best is already a visible change in outputs.
TOLERANCE = {"top1": ACCURACY_TOLERANCE, "agreement": 0.001}


def _tolerance(r: dict) -> float:
    return TOLERANCE.get(str(r.get("quality_metric")), ACCURACY_TOLERANCE)


def _q(r: dict) -> str:
    """The row's quality as a phrase: 'top-1 93.1%', 'cosine vs FP32 0.9991'."""
    return r.get("quality_text") or "quality not measured"


def _at_or_below_chance(r: dict) -> bool:
    return r.get("quality_chance") is not None and r["quality"] is not None and r["quality"] <= r["quality_chance"]


def group_key(row: dict) -> tuple[str, str]:
    return row["group"], row["source"]


def chart_groups(rows: list[dict]) -> list[tuple[str, str]]:
    """(group, source) pairs with at least one successful measurement; measured groups first."""
    keys = {group_key(r) for r in rows if r["status"] == "ok" and r["median_ms"] is not None}
    return sorted(keys, key=lambda k: (k[1] != "measured", k[0]))


def recommend(rows: list[dict], tolerance: Optional[float] = None,
              group: Optional[tuple[str, str]] = None) -> Optional[dict]:
    """The fastest front member within `tolerance` of the best quality, in `group` (default: the
    first chart group, measured figures before estimates); None when no quality is measured, or
    the best is no better than chance."""
    if group is None:
        scored = [k for k in chart_groups(rows) if any(r["quality"] is not None for r in rows if group_key(r) == k)]
        if not scored:
            return None
        group = scored[0]
    members = [r for r in rows if group_key(r) == group and r["status"] == "ok" and rank_ms(r) is not None
               and r["quality"] is not None]
    # Figures taken while the machine was busy are noise: they neither win nor hide a reliable option
    # from the front. Only when nothing reliable is left is the pick made from them, and says so.
    pool = [r for r in members if not r.get("contended")] or members
    if not pool:
        return None
    front = [pool[i] for i in pareto_front([(rank_ms(r), r["quality"]) for r in pool])]
    best = max(r["quality"] for r in front)
    eligible = [r for r in front if as_accurate(r, best, tolerance) and not _at_or_below_chance(r)]
    if not eligible:
        return None
    fastest = min(eligible, key=lambda r: rank_ms(r))  # latency, or ms per sample for an offline group
    if group[1] != "estimated":
        return fastest
    # Estimates whose intervals overlap cannot be told apart on latency (as accuracies within their
    # intervals cannot): among those, the most accurate is the safer pick.
    tied = [r for r in pool if _overlaps(r, fastest) and as_accurate(r, best, tolerance)
            and not _at_or_below_chance(r)] or [fastest]
    return max(tied, key=lambda r: (r["quality"], -rank_ms(r)))


def no_pick_reason(rows: list[dict], group: tuple[str, str]) -> str:
    """Why a group with latencies has no pick: quality unmeasured (and why), or at chance."""
    members = [r for r in rows if group_key(r) == group and r["status"] == "ok"]
    if members and all(r["quality"] is None for r in members):
        return f"quality is {members[0]['quality_text']}, so no candidate is recommended; latencies are below"
    chance = next((r["quality_chance"] for r in members if r.get("quality_chance") is not None), None)
    if chance is not None:
        return (f"every candidate's quality is at or below chance ({100 * chance:.1f}%): the model does not "
                "do this task, so none is recommended")
    return "no measurement has both a latency and a quality"


def as_accurate(r: dict, best_acc: float, tolerance: Optional[float] = None) -> bool:
    """Within `tolerance` of the best quality, or so close that the evaluation cannot tell them
    apart (the best lies inside this candidate's 95% interval): a small evaluation set must not
    make a slower candidate win on noise."""
    if r["quality"] >= best_acc - (_tolerance(r) if tolerance is None else tolerance):
        return True
    return r.get("top1_ci_high") is not None and r["top1_ci_high"] >= best_acc


def _same_group(choice: dict, rows: list[dict]) -> list[dict]:
    return [r for r in rows if group_key(r) == group_key(choice) and r["status"] == "ok"
            and rank_ms(r) is not None and r["quality"] is not None]


def _baseline(choice: dict, rows: list[dict]) -> Optional[dict]:
    return next((r for r in _same_group(choice, rows) if r["candidate"] == "baseline"
                 and r["backend"] == choice["backend"] and r["precision"] == "fp32"), None)


def label(r: dict) -> str:
    return f"{r['name']} on {r['backend']} ({r['executed_precision'] or r['precision']})"


def explain(choice: dict, rows: list[dict]) -> str:
    """One sentence: what to ship, its figures, and how it compares with the FP32 baseline."""
    figure = choice["scenario_text"] if choice.get("axis") == "throughput" else f"{choice['median_ms']:.3g} ms median"
    text = f"{label(choice)}: {figure}, {_q(choice)}"
    base = _baseline(choice, rows)
    if base and base["key"] != choice["key"]:
        # The row's speedup: timed against the baseline in the same processes where it could be.
        ratio = choice.get("speedup") or rank_ms(base) / rank_ms(choice)
        text += (f"; {ratio:.2f}x the FP32 baseline's "
                 f"{'throughput' if choice.get('axis') == 'throughput' else 'speed'} on the same runtime ({_q(base)})")
    warning = (" " + chance_warning(choice)) if at_chance(choice) else ""
    if len(_same_group(choice, rows)) == 1:
        return text + ". It is the only option measured here, so there is nothing to choose between." + warning
    return text + (f". It is the fastest point on the Pareto front within {_tolerance(choice):g} of the best "
                   f"{choice['quality_label']} (or within its own 95% interval of it).") + warning


def at_chance(r: dict) -> bool:
    """Top-1 no better than guessing: chance (1 / classes) lies inside its 95% interval, or, without
    an interval, it is under 1.5x chance."""
    classes = r.get("num_classes")
    if not classes or r.get("top1") is None:
        return False
    chance = 1.0 / classes
    if r.get("top1_ci_low") is not None:
        return r["top1_ci_low"] <= chance
    return r["top1"] < 1.5 * chance


def chance_warning(r: dict) -> str:
    return (f"Warning: its top-1 ({100 * r['top1']:.1f}%) is at chance for {r['num_classes']} classes: the model "
            "has not learned the task; do not ship it (train longer, e.g. a larger --budget or --epochs).")


def reasons(choice: dict, rows: list[dict]) -> list[str]:
    """Plain-language reasons for the pick, for readers who have never seen a Pareto front."""
    peers = _same_group(choice, rows)
    if len(peers) == 1:
        out = [f"It is the only option with a measured quality in this group ({_q(choice)}); nothing was "
               "compared with it."]
    elif choice.get("quality_metric") != "top1":
        out = _reasons_unlabelled(choice, peers)
    else:
        out = _reasons_labelled(choice, peers, rows)
    return _contention_reasons(choice, rows) + _estimate_reasons(choice, rows) + out


def _reasons_labelled(choice: dict, peers: list[dict], rows: list[dict]) -> list[str]:
    best = max(peers, key=lambda r: r["top1"])
    out = []
    if best["top1"] <= choice["top1"]:
        out.append(f"It has the best top-1 accuracy measured ({100 * choice['top1']:.1f}%).")
    elif best["top1"] - choice["top1"] <= ACCURACY_TOLERANCE:
        out.append(f"Its top-1 accuracy ({100 * choice['top1']:.1f}%) is within {100 * ACCURACY_TOLERANCE:.0f} "
                   f"point of the best ({100 * best['top1']:.1f}%, {label(best)}).")
    else:
        out.append(f"Its top-1 accuracy ({100 * choice['top1']:.1f}%, 95% interval {100 * choice['top1_ci_low']:.1f}-"
                   f"{100 * choice['top1_ci_high']:.1f}%) cannot be told apart from the best "
                   f"({100 * best['top1']:.1f}%, {label(best)}) on this evaluation set.")
    slower = sorted((r for r in peers if r["key"] != choice["key"] and as_accurate(r, choice["top1"])
                     and rank_ms(r) >= rank_ms(choice)), key=lambda r: rank_ms(r))
    faster = [r for r in peers if r["key"] != choice["key"] and as_accurate(r, choice["top1"])
              and rank_ms(r) < rank_ms(choice)]
    if faster:  # picked over faster estimates it cannot be told apart from (said in the estimate reasons)
        pass
    elif slower:
        nxt = slower[0]
        out.append(f"Every other option about as accurate is slower; the next fastest, {label(nxt)}, "
                   f"{_slower_by(nxt, choice)}.")
    else:
        out.append(f"Every other option scored lower, by more than {100 * ACCURACY_TOLERANCE:.0f} point and by more "
                   "than its own 95% interval.")
    base = _baseline(choice, rows)
    if base and base["key"] != choice["key"] and choice.get("speedup_low"):
        out.append(f"Against the FP32 baseline on {choice['backend']}: {choice['speedup']:.2f}x faster "
                   f"(95% interval {choice['speedup_low']:.2f}-{choice['speedup_high']:.2f}x{paired_basis(choice)}), "
                   f"{100 * (choice['top1'] - base['top1']):+.1f} accuracy points.")
    overlapping = [r for r in peers if r["key"] != choice["key"] and r.get("top1_ci_low") is not None
                   and choice.get("top1_ci_low") is not None
                   and r["top1_ci_low"] <= choice["top1_ci_high"] and r["top1_ci_high"] >= choice["top1_ci_low"]]
    if overlapping and len(overlapping) == len(peers) - 1:
        n = choice.get("accuracy_total")
        out.append("The 95% accuracy intervals of all options overlap"
                   + (f" on this {n}-image evaluation set" if n else "")
                   + "; evaluate on more data before relying on small accuracy differences.")
    return out


def _overlaps(a: dict, b: dict) -> bool:
    """The two latency intervals overlap: the figures cannot tell the options apart."""
    if None in (a.get("ci_low_ms"), a.get("ci_high_ms"), b.get("ci_low_ms"), b.get("ci_high_ms")):
        return False
    return a["ci_low_ms"] <= b["ci_high_ms"] and b["ci_low_ms"] <= a["ci_high_ms"]


def _estimate_reasons(choice: dict, rows: list[dict]) -> list[str]:
    """Said first for a pick made on estimates: what they are, and what they cannot tell apart."""
    if choice["source"] != "estimated":
        return []
    err = choice.get("estimate_error_pct")
    how = {"anchor transfer": "transferred from published measurements of the device, ",
           "host-scaled roofline": "this machine's measurement scaled by a roofline, "}.get(
        choice.get("estimate_method") or "", "")
    basis = (choice.get("estimate_basis") or "").removeprefix("unvalidated: ")
    text = (f"These latencies are estimates for {choice['device']}, not measurements: {how}"
            + (f"with 90% of held-out errors within ±{err:.0f}%" + (f" ({basis})." if basis else ".")
               if err is not None else
               f"UNVALIDATED ({basis or 'no measurement of ' + choice['device'] + ' checks them'}), so each is shown "
               f"as a wide interval ({choice['ci_low_ms']:.3g}-{choice['ci_high_ms']:.3g} ms for this pick), not as "
               "a number to trust."))
    tied = [r for r in _same_group(choice, rows) if r["key"] != choice["key"] and _overlaps(r, choice)]
    out = [text]
    if tied:
        out.append(f"{len(tied)} other option(s) have estimated intervals that overlap this one's, so the estimates "
                   "cannot tell them apart on latency; among those about as accurate, the most accurate is picked. "
                   "Measure on the device before relying on the ordering.")
    return out


def _slower_by(nxt: dict, choice: dict) -> str:
    if choice.get("axis") == "throughput":
        return f"does {rank_ms(choice) / rank_ms(nxt):.2f}x the samples per second ({nxt['scenario_text']})"
    return f"takes {nxt['median_ms'] / choice['median_ms']:.2f}x as long ({nxt['median_ms']:.3g} ms)"


def _reasons_unlabelled(choice: dict, peers: list[dict]) -> list[str]:
    """Reasons when quality is agreement with FP32 or a user metric (no labels, no intervals)."""
    best = max(peers, key=lambda r: r["quality"])
    what = choice["quality_label"]
    out = [f"Its {what} is {choice['quality']:.4g}" + (" (the best measured)." if best["key"] == choice["key"] else
                                                         f"; the best is {best['quality']:.4g} ({label(best)}).")]
    slower = sorted((r for r in peers if r["key"] != choice["key"] and as_accurate(r, choice["quality"])),
                    key=lambda r: rank_ms(r))
    if slower:
        nxt = slower[0]
        out.append(f"Every other option with as good a {what} is slower; the next fastest, {label(nxt)}, "
                   f"{_slower_by(nxt, choice)}.")
    else:
        out.append(f"Every other option's {what} is lower by more than {_tolerance(choice):g}.")
    if choice.get("quality_metric") == "agreement":
        out.append("Quality here is agreement with the FP32 model's outputs on the same inputs, not accuracy on "
                   "labels: it shows what compression changed, not how good the model is.")
    return out


def _contention_reasons(choice: dict, rows: list[dict]) -> list[str]:
    """Said first: a pick among unreliable figures is no pick."""
    busy = [r for r in rows if group_key(r) == group_key(choice) and r.get("contended")]
    if choice.get("contended"):
        return ["UNRELIABLE: every latency in this group was measured while the machine was busy (other processes, "
                "load or CPU steal; see the flags), so these figures are unreliable and this pick may be noise. "
                "Rerun on a quiet machine (compare --wait-quiet SECONDS waits for one)."]
    if busy:
        return [f"{len(busy)} measurement(s) taken while the machine was busy were left out of this pick "
                "(unreliable figures; see the flags)."]
    return []


def recommendations(rows: list[dict], device: Optional[str] = None) -> list[dict]:
    """One pick per chart group: {group, source, choice, sentence, reasons}. Groups describing
    `device` (the one the user asked about, even if only estimated) come first."""
    out = []
    keys = chart_groups(rows)
    if device:
        asked = {group_key(r) for r in rows if r["device"] == device}
        keys = [k for k in keys if k in asked] + [k for k in keys if k not in asked]
    for key in keys:
        choice = recommend(rows, group=key)
        if choice:
            out.append({"group": key[0], "source": key[1], "choice": choice, "sentence": explain(choice, rows),
                        "reasons": reasons(choice, rows)})
    return out


def paired_basis(row: dict) -> str:
    """', paired over N processes' (or ', in-process A/B ...') after a speedup's interval when it
    was paired, else '' (an interval from the two rows' own intervals needs no note)."""
    basis = row.get("speedup_basis") or ""
    return f", {basis}" if basis.startswith(("paired", "in-process")) else ""

