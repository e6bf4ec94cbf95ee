"""Accuracy-latency Pareto front: higher accuracy and lower latency are better."""
from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points among (latency, accuracy) pairs.

    A point is dominated when another is at least as fast and at least as accurate and strictly
    better in one of the two. Ties (identical points) are all kept.
    """
    front = []
    for i, (lat_i, acc_i) in enumerate(points):
        dominated = any(
            (lat_j <= lat_i and acc_j >= acc_i) and (lat_j < lat_i or acc_j > acc_i)
            for j, (lat_j, acc_j) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def rank_ms(row: dict):
    """What a report row is ranked on, lower being better: its median latency, or for an offline
    (throughput) row its ms per sample, 1 / throughput (report/table.py `scenario_fields`)."""
    return row["axis_ms"] if "axis_ms" in row else row["median_ms"]
