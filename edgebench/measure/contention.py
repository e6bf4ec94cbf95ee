"""Is the machine quiet enough for a latency figure to mean anything?

On a shared machine another process's threads take the cores a runtime's thread pool spins on,
and a 0.35 ms model is stored at 250 ms with nothing to say so. This module records what else the
machine was doing before and during a measurement, from the kernel's own CPU accounting (psutil):

- other processes' CPU share: all busy CPU time minus this process's own, over the window;
- CPU steal (a virtual machine's host giving the cores to someone else);
- the 1-minute load average against the cores;
- the clock frequency where it is readable;

and, after the measurement, the spread of its samples. `assess` turns these into a verdict with
reasons, stored with every measurement (`Measurement.extra["contention"]`); reports flag a busy
measurement, Ship decisions and gate verdicts leave it out.

The window is measured in CPU-time ticks (the sum of every CPU time field), not with a clock:
`timing` stays the only code that reads one.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import psutil

from edgebench.devices.host import physical_cores

# Other processes using more than this share of all CPUs make a measurement unreliable: on a
# 2-core machine that is 0.3 of a core, about what a second busy thread steals half of the time.
OTHERS_SHARE_LIMIT = 0.15
STEAL_SHARE_LIMIT = 0.05  # a hypervisor taking 5% of the time stalls threads unpredictably
LOAD_PER_CORE_LIMIT = 1.5  # runnable threads beyond 1.5 per core: every thread waits its turn
SPREAD_LIMIT = 1.5  # p90 more than 1.5x the median: the samples show interference


@dataclass(frozen=True)
class LoadReading:
    """What the machine did over one window."""
    cores: int
    load1: float
    others_share: float  # fraction of all CPU time used by other processes
    steal_share: float
    freq_mhz: Optional[float] = None
    max_freq_mhz: Optional[float] = None

    @property
    def others_cores(self) -> float:
        return self.others_share * self.cores

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _total(t) -> float:
    # guest time is already inside user on Linux; counting it again would dilute the shares
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return sum(getattr(t, f, 0.0) for f in fields)


def _idle(t) -> float:
    return getattr(t, "idle", 0.0) + getattr(t, "iowait", 0.0)


def _own_cpu(process: psutil.Process, children: bool) -> float:
    t = process.cpu_times()
    own = t.user + t.system
    return own + (t.children_user + t.children_system if children else 0.0)


class LoadProbe:
    """Start before a measurement, `stop()` after it: the machine's load over that window with
    this process's own CPU time taken out (children's too when `children`, for a parent whose
    workers have been waited for)."""

    def __init__(self, children: bool = False):
        self._process = psutil.Process()
        self._children = children
        self._system = psutil.cpu_times()
        self._own = _own_cpu(self._process, children)

    def stop(self) -> LoadReading:
        system, own = psutil.cpu_times(), _own_cpu(self._process, self._children)
        total = _total(system) - _total(self._system)
        if total <= 0:  # no tick elapsed: nothing was observed, so nothing can be said
            return _reading(0.0, 0.0)
        steal = getattr(system, "steal", 0.0) - getattr(self._system, "steal", 0.0)
        busy = total - (_idle(system) - _idle(self._system)) - steal
        others = max(0.0, busy - (own - self._own))
        return _reading(min(1.0, others / total), max(0.0, steal / total))


def _reading(others_share: float, steal_share: float) -> LoadReading:
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    return LoadReading(cores=os.cpu_count() or 1, load1=os.getloadavg()[0], others_share=others_share,
                       steal_share=steal_share, freq_mhz=round(freq.current, 0) if freq and freq.current else None,
                       max_freq_mhz=round(freq.max, 0) if freq and freq.max else None)


def sample_load(interval_s: float = 0.5) -> LoadReading:
    """The machine's load over the next `interval_s` seconds, while this process sleeps."""
    probe = LoadProbe()
    time.sleep(interval_s)
    return probe.stop()


def busy_reasons(reading: LoadReading, include_load: bool = True) -> list[str]:
    """Why `reading` says the machine is busy (empty when it is quiet)."""
    out = []
    if reading.others_share > OTHERS_SHARE_LIMIT:
        out.append(f"other processes used {reading.others_cores:.1f} of {reading.cores} cores")
    if reading.steal_share > STEAL_SHARE_LIMIT:
        out.append(f"CPU steal {100 * reading.steal_share:.0f}%")
    if include_load and reading.load1 > LOAD_PER_CORE_LIMIT * reading.cores:
        out.append(f"load average {reading.load1:.1f} on {reading.cores} cores")
    return out


def free_cores(reading: LoadReading) -> float:
    return max(0.0, reading.cores - reading.others_cores)


def default_threads() -> int:
    """The thread count a runtime picks when none is set: one per physical core."""
    return physical_cores()


def assess(before: LoadReading, during: LoadReading, samples_ms, threads: Optional[int]) -> dict:
    """The verdict stored with a measurement: {busy, reasons, before, during, spread, threads}.

    The load average is judged only before the measurement: during it, it counts the
    measurement's own threads."""
    import numpy as np

    reasons = [f"before: {r}" for r in busy_reasons(before)]
    reasons += [f"during: {r}" for r in busy_reasons(during, include_load=False)]
    spread = None
    if len(samples_ms) >= 10:
        s = np.asarray(samples_ms, dtype=np.float64)
        median = float(np.median(s))
        spread = float(np.percentile(s, 90)) / median if median > 0 else None
        if spread and spread > SPREAD_LIMIT:
            reasons.append(f"samples spread: p90 is {spread:.1f}x the median")
    used = threads or default_threads()
    free = min(free_cores(before), free_cores(during))
    if used > free + 0.5:
        reasons.append(f"{used} runtime threads on about {free:.1f} free cores (oversubscribed)")
    return {"busy": bool(reasons), "reasons": reasons, "before": before.to_dict(), "during": during.to_dict(),
            "spread_p90_over_median": round(spread, 3) if spread else None, "threads": used}


def contention_of(extra: dict) -> Optional[dict]:
    """The stored verdict of a measurement's `extra`, or None where none was recorded."""
    found = (extra or {}).get("contention")
    return found if isinstance(found, dict) else None


def is_busy(extra: dict) -> bool:
    found = contention_of(extra)
    return bool(found and found.get("busy"))


def busy_text(extra: dict) -> str:
    found = contention_of(extra) or {}
    return "; ".join(found.get("reasons", [])) or "machine busy"


def wait_until_quiet(max_wait_s: float, interval_s: float = 1.0, on_wait=None) -> tuple[LoadReading, list[str]]:
    """Sample the load until the machine is quiet or `max_wait_s` has passed; returns the last
    reading and its reasons (empty: quiet). Load average is left out after the first sample: it
    decays over a minute and would keep a machine that just became quiet 'busy'."""
    reading = sample_load(interval_s)
    reasons = busy_reasons(reading)
    waited = interval_s
    while reasons and waited < max_wait_s:
        if on_wait:
            on_wait(reasons, waited)
        reading = sample_load(interval_s)
        reasons = busy_reasons(reading, include_load=False)
        waited += interval_s
    return reading, reasons


def check_before_run(max_wait_s: float, note) -> dict:
    """At the start of a run: wait up to `max_wait_s` for a quiet machine, and `note` a warning
    when it stays busy. Returns what is stored in run.json."""
    def waiting(reasons, waited):
        if waited <= 1.0 or int(waited) % 10 == 0:
            note(f"waiting for a quiet machine ({'; '.join(reasons)}), {waited:.0f} of {max_wait_s:.0f} s")

    reading, reasons = wait_until_quiet(max_wait_s, interval_s=min(1.0, max(0.3, max_wait_s)), on_wait=waiting)
    if reasons:
        note(f"the machine is busy ({'; '.join(reasons)}): latencies measured now are unreliable and will be "
             "flagged; run on a quiet machine, or pass --wait-quiet SECONDS to wait for one")
    return {"busy": bool(reasons), "reasons": reasons, **reading.to_dict()}
