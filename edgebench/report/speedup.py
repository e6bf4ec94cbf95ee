"""A measured row's speedup over the FP32 baseline on the same runtime, and what its interval rests on.

Three bases, best first: the candidate timed against the baseline in its own worker processes
(measure/pairing.py), the two rows' processes paired by round (measure/intervals.paired_speedup),
or the two rows' own intervals (conservative). The first cancels what a process's placement does
to both models; the others carry it in full.
"""
from __future__ import annotations

from typing import Optional

from edgebench.core.records import Measurement
from edgebench.measure.intervals import paired_speedup


def latency_speedup(m: Measurement, base_m: Measurement) -> dict:
    """speedup, speedup_low, speedup_high and speedup_basis of measured row `m` against `base_m`."""
    lat, base_lat = m.latency or {}, base_m.latency or {}
    in_process = m.extra.get("paired") or {}
    if "speedup" in in_process:
        return {"speedup": in_process["speedup"], "speedup_low": in_process["low"],
                "speedup_high": in_process["high"], "speedup_basis": in_process["basis"]}
    paired = paired_speedup((base_m.extra.get("processes") or {}).get("medians_ms") or [],
                            (m.extra.get("processes") or {}).get("medians_ms") or [])
    if paired:
        return {"speedup": paired[0], "speedup_low": paired[1], "speedup_high": paired[2],
                "speedup_basis": f"paired over {len(m.extra['processes']['medians_ms'])} processes"}
    failed = f" (the in-process A/B failed: {in_process['error']})" if "error" in in_process else ""
    return {"speedup": base_lat["median_ms"] / lat["median_ms"],
            "speedup_low": base_lat["ci_low_ms"] / lat["ci_high_ms"],
            "speedup_high": base_lat["ci_high_ms"] / lat["ci_low_ms"],
            "speedup_basis": "from the two intervals" + failed}


def rows_disagree(m: Measurement, base_m: Measurement, fields: dict) -> Optional[str]:
    """Why the two rows' medians say something else than the in-process A/B, when they do: the
    ratio of the rows' medians lies outside the A/B's interval. Then a process's placement moved
    one of the rows (the medians came from different processes), and the rows' ranking is less
    sure than their own intervals say."""
    if not fields["speedup_basis"].startswith("in-process"):
        return None
    rows_ratio = (base_m.latency or {})["median_ms"] / (m.latency or {})["median_ms"]
    if fields["speedup_low"] <= rows_ratio <= fields["speedup_high"]:
        return None
    return (f"timed against the baseline in the same process it is {fields['speedup']:.2f}x as fast (95% "
            f"{fields['speedup_low']:.2f}-{fields['speedup_high']:.2f}x), but the two rows' medians, from separate "
            f"processes, say {rows_ratio:.2f}x: a process's placement moved one of them; --processes 3 or more "
            "measures that spread")
