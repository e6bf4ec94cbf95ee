"""The one-paragraph answer a report leads with: which candidate to ship and why."""
from __future__ import annotations

from typing import Optional

ACCURACY_TOLERANCE = 0.01  # a candidate within 1 point of the best accuracy counts as "as accurate"


def recommend(rows: list[dict], tolerance: float = ACCURACY_TOLERANCE) -> Optional[dict]:
    """The fastest front member whose accuracy is within `tolerance` of the best one measured."""
    front = [r for r in rows if r["pareto"] and r["top1"] is not None]
    if not front:
        return None
    best_acc = max(r["top1"] for r in front)
    eligible = [r for r in front if r["top1"] >= best_acc - tolerance]
    return min(eligible, key=lambda r: r["median_ms"])


def explain(choice: dict, rows: list[dict]) -> str:
    base = next((r for r in rows if r["candidate"] == "baseline" and r["backend"] == choice["backend"]
                 and r["precision"] == "fp32" and r["group"] == choice["group"] and r["status"] == "ok"), None)
    text = (f"{choice['name']} on {choice['backend']} ({choice['executed_precision'] or choice['precision']}): "
            f"{choice['median_ms']:.3g} ms median, top-1 {100 * choice['top1']:.1f}%")
    if base and base["key"] != choice["key"]:
        text += (f"; {base['median_ms'] / choice['median_ms']:.2f}x the FP32 baseline's speed on the same runtime "
                 f"at {100 * (choice['top1'] - base['top1']):+.1f} points")
    return text + f". It is the fastest point on the Pareto front within {100 * ACCURACY_TOLERANCE:.0f} point of the best accuracy."
