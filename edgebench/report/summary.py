"""The answer a report leads with: which candidate to ship for each chart, and why.

Latencies are compared only inside one group (device / processor, measured or estimated): a
figure taken on this machine and an estimate for a Jetson are not on the same scale.
"""
from __future__ import annotations

from typing import Optional

ACCURACY_TOLERANCE = 0.01  # a candidate within 1 point of the best accuracy counts as "as accurate"


def group_key(row: dict) -> tuple[str, str]:
    return row["group"], row["source"]


def chart_groups(rows: list[dict]) -> list[tuple[str, str]]:
    """(group, source) pairs with at least one successful measurement; measured groups first."""
    keys = {group_key(r) for r in rows if r["status"] == "ok" and r["median_ms"] is not None}
    return sorted(keys, key=lambda k: (k[1] != "measured", k[0]))


def recommend(rows: list[dict], tolerance: float = ACCURACY_TOLERANCE,
              group: Optional[tuple[str, str]] = None) -> Optional[dict]:
    """The fastest front member within `tolerance` of the best accuracy, in `group` (default: the
    first chart group, measured figures before estimates)."""
    if group is None:
        scored = [k for k in chart_groups(rows) if any(r["top1"] is not None for r in rows if group_key(r) == k)]
        if not scored:
            return None
        group = scored[0]
    front = [r for r in rows if r["pareto"] and r["top1"] is not None and group_key(r) == group]
    if not front:
        return None
    best_acc = max(r["top1"] for r in front)
    eligible = [r for r in front if as_accurate(r, best_acc, tolerance)]
    return min(eligible, key=lambda r: r["median_ms"])


def as_accurate(r: dict, best_acc: float, tolerance: float = ACCURACY_TOLERANCE) -> bool:
    """Within `tolerance` of the best accuracy, or so close that the evaluation cannot tell them
    apart (the best lies inside this candidate's 95% interval): a small evaluation set must not
    make a slower candidate win on noise."""
    if r["top1"] >= best_acc - tolerance:
        return True
    return r.get("top1_ci_high") is not None and r["top1_ci_high"] >= best_acc


def _same_group(choice: dict, rows: list[dict]) -> list[dict]:
    return [r for r in rows if group_key(r) == group_key(choice) and r["status"] == "ok"
            and r["median_ms"] is not None and r["top1"] is not None]


def _baseline(choice: dict, rows: list[dict]) -> Optional[dict]:
    return next((r for r in _same_group(choice, rows) if r["candidate"] == "baseline"
                 and r["backend"] == choice["backend"] and r["precision"] == "fp32"), None)


def label(r: dict) -> str:
    return f"{r['name']} on {r['backend']} ({r['executed_precision'] or r['precision']})"


def explain(choice: dict, rows: list[dict]) -> str:
    """One sentence: what to ship, its figures, and how it compares with the FP32 baseline."""
    text = f"{label(choice)}: {choice['median_ms']:.3g} ms median, top-1 {100 * choice['top1']:.1f}%"
    base = _baseline(choice, rows)
    if base and base["key"] != choice["key"]:
        text += (f"; {base['median_ms'] / choice['median_ms']:.2f}x the FP32 baseline's speed on the same runtime "
                 f"at {100 * (choice['top1'] - base['top1']):+.1f} points")
    text += (f". It is the fastest point on the Pareto front within {100 * ACCURACY_TOLERANCE:.0f} point "
             "of the best accuracy (or within its own 95% interval of it).")
    return text + (" " + chance_warning(choice) if at_chance(choice) else "")


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
    slower = sorted((r for r in peers if r["key"] != choice["key"] and as_accurate(r, choice["top1"])),
                    key=lambda r: r["median_ms"])
    if slower:
        nxt = slower[0]
        out.append(f"Every other option about as accurate is slower; the next fastest, {label(nxt)}, takes "
                   f"{nxt['median_ms'] / choice['median_ms']:.2f}x as long ({nxt['median_ms']:.3g} ms).")
    else:
        out.append(f"Every other option scored lower, by more than {100 * ACCURACY_TOLERANCE:.0f} point and by more "
                   "than its own 95% interval.")
    base = _baseline(choice, rows)
    if base and base["key"] != choice["key"] and choice.get("speedup_low"):
        out.append(f"Against the FP32 baseline on {choice['backend']}: {choice['speedup']:.2f}x faster "
                   f"(95% interval {choice['speedup_low']:.2f}-{choice['speedup_high']:.2f}x), "
                   f"{100 * (choice['top1'] - base['top1']):+.1f} accuracy points.")
    overlapping = [r for r in peers if r["key"] != choice["key"] and r.get("top1_ci_low") is not None
                   and choice.get("top1_ci_low") is not None
                   and r["top1_ci_low"] <= choice["top1_ci_high"] and r["top1_ci_high"] >= choice["top1_ci_low"]]
    if overlapping and len(overlapping) == len(peers) - 1:
        n = choice.get("accuracy_total")
        out.append("The 95% accuracy intervals of all options overlap"
                   + (f" on this {n}-image evaluation set" if n else "")
                   + "; evaluate on more data before relying on small accuracy differences.")
    if choice["source"] == "estimated":
        err = choice.get("estimate_error_pct")
        out.append("Its latency is an estimate, not a measurement" + (f" (typical error ±{err:.0f}%)." if err else "."))
    return out


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
