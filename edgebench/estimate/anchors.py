"""Published measurements as the ground truth of device estimates.

Each device profile cites latencies of reference models measured on the device itself (its
`anchors`). An estimate for a candidate transfers from an anchor of the same runtime, processor,
precision and thread count: anchor latency x (candidate / reference), where the ratio comes from
this machine's measurements of both on the same runtime when they are cached
(`benchmarks/estimator.py --host-ratios`), else from the roofline on the device's own peaks.

`leave_one_anchor_out` validates that transfer against the published figures: every anchor is
predicted from the device's other anchors (never from itself) and compared with what was
published. Its error, per device, is the only error figure an estimate may state; a device with
no comparable anchors is unvalidated.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import numpy as np

from edgebench.devices.profiles import Anchor, DeviceProfile

# Reference models edgebench can build in code (torchvision, random weights: no download).
REFERENCE_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0")
GOAL_WITHIN = 0.25  # the goal: >= 80% of anchors predicted within +-25%

Ratio = Callable[[Anchor, Anchor], Optional[float]]  # latency(a) / latency(b) on the same runtime


def buildable(anchor: Anchor) -> bool:
    return anchor.usable_latency and anchor.model in REFERENCE_MODELS and anchor.input_size is not None


def comparable(a: Anchor, b: Anchor) -> bool:
    """b can stand in for a: same runtime, processor, precision and threads; a different model."""
    return (a.model != b.model and (a.runtime, a.processor, a.precision, a.threads, a.batch)
            == (b.runtime, b.processor, b.precision, b.threads, b.batch))


def transfer(target: Anchor, peers: list[Anchor], ratio: Ratio) -> Optional[float]:
    """Geometric mean over `peers` of peer latency x ratio(target model / peer model)."""
    logs = []
    for b in peers:
        r = ratio(target, b)
        if r and r > 0 and b.latency_ms:
            logs.append(math.log(b.latency_ms * r))
    return math.exp(sum(logs) / len(logs)) if logs else None


def leave_one_anchor_out(profile: DeviceProfile, ratio: Ratio) -> list[dict]:
    """Every buildable anchor predicted from the device's other comparable anchors."""
    usable = [a for a in profile.anchors if buildable(a)]
    rows = []
    for a in usable:
        peers = [b for b in usable if b is not a and comparable(a, b)]
        predicted = transfer(a, peers, ratio) if peers else None
        if predicted is None or a.latency_ms is None:
            continue
        rows.append({"device": profile.name, "model": a.model, "runtime": a.runtime, "processor": a.processor,
                     "precision": a.precision, "threads": a.threads, "published_ms": a.latency_ms,
                     "predicted_ms": round(predicted, 4), "error": round(predicted / a.latency_ms - 1, 4),
                     "from": sorted(b.model for b in peers), "reliability": a.reliability, "source": a.source})
    return rows


def summarize_errors(rows: list[dict]) -> dict:
    e = np.abs(np.array([r["error"] for r in rows], dtype=np.float64))
    if e.size == 0:
        return {"n": 0, "status": "unvalidated"}
    return {"n": int(e.size), "within_25pct": float((e <= GOAL_WITHIN).mean()),
            "median_abs_pct": float(100 * np.median(e)), "p90_abs_pct": float(100 * np.percentile(e, 90)),
            "status": "checked", "meets_goal": bool((e <= GOAL_WITHIN).mean() >= 0.8)}
