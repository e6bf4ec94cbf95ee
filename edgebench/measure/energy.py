"""Energy per inference where the machine exposes a sensor; absent sensors say why, never 0.

- Linux x86: RAPL package counters, /sys/class/powercap/intel-rapl:N/energy_uj (often readable
  by root only; a counter wraps at max_energy_range_uj).
- Jetson: `tegrastats` prints power per rail (VDD_IN, VDD_CPU_GPU_CV, VDD_SOC, ...) every
  interval; the mean power per rail over the timed loop times the loop's duration gives energy.
  The power mode in force comes from `nvpmodel -q`.

A meter only reads sensors: durations come from timing.py (the loop's total_s), which stays the
only code that reads the clock.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Optional

POWERCAP = Path("/sys/class/powercap")
RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)mW/(\d+)mW")


class NoEnergy:
    def __init__(self, reason: str):
        self.reason = reason

    def start(self) -> None:
        pass

    def stop(self, inferences: int, timed_iterations: int, timed_seconds: float) -> dict:
        return {"available": False, "reason": self.reason}


class RaplMeter:
    """Sum of the package domains' energy counters."""

    def __init__(self, domains: list[Path]):
        self.domains = domains
        self._start: list[int] = []

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def start(self) -> None:
        self._start = self._read()

    def stop(self, inferences: int, timed_iterations: int, timed_seconds: float) -> dict:
        """`inferences`: all run between start and stop (warm-up included); the timed loop's
        iterations and seconds give the rate at which they ran."""
        end = self._read()
        total_uj = 0
        for d, a, b in zip(self.domains, self._start, end):
            if b < a:  # the counter wrapped
                b += int((d / "max_energy_range_uj").read_text())
            total_uj += b - a
        joules = total_uj / 1e6
        per_inference = joules / inferences if inferences else None
        rate = timed_iterations / timed_seconds if timed_seconds > 0 else None
        return {"available": True, "sensor": "rapl", "domains": [d.name for d in self.domains], "energy_j": joules,
                "mean_power_w": per_inference * rate if per_inference is not None and rate else None,
                "energy_per_inference_mj": 1e3 * per_inference if per_inference is not None else None,
                "note": "CPU package energy (whole package, including other processes)"}


class TegrastatsMeter:
    """Mean power per rail from `tegrastats` running beside the timed loop."""

    def __init__(self, interval_ms: int = 50):
        self.interval_ms = interval_ms
        self.samples: dict[str, list[float]] = {}
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            for rail, now_mw, _ in RAIL.findall(line):
                self.samples.setdefault(rail, []).append(float(now_mw))

    def stop(self, inferences: int, timed_iterations: int, timed_seconds: float) -> dict:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(timeout=5)
        if self._thread:
            self._thread.join(timeout=5)
        if not self.samples:
            return {"available": False, "reason": "tegrastats printed no power rails during the run"}
        rails = {r: sum(v) / len(v) / 1e3 for r, v in self.samples.items()}
        total_rail = "VDD_IN" if "VDD_IN" in rails else max(rails, key=lambda r: rails[r])
        joules = rails[total_rail] * timed_seconds  # energy of the timed loop
        return {"available": True, "sensor": "tegrastats", "rails_w": rails, "total_rail": total_rail,
                "mean_power_w": rails[total_rail], "energy_j": joules,
                "energy_per_inference_mj": 1e3 * joules / timed_iterations if timed_iterations else None,
                "power_mode": jetson_power_mode(), "samples": min(len(v) for v in self.samples.values())}


def rapl_domains() -> list[Path]:
    return sorted(p for p in POWERCAP.glob("intel-rapl:*") if p.name.count(":") == 1)


def jetson_power_mode() -> Optional[str]:
    if not shutil.which("nvpmodel"):
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"NV Power Mode:\s*(\S+)", out)
    return match.group(1) if match else None


def energy_meter():
    """The best sensor this machine offers, or a NoEnergy that says why there is none."""
    if shutil.which("tegrastats"):
        return TegrastatsMeter()
    domains = rapl_domains()
    if domains:
        try:
            for d in domains:
                int((d / "energy_uj").read_text())
            return RaplMeter(domains)
        except PermissionError:
            return NoEnergy("RAPL counters exist but are not readable (root only on this system)")
        except (OSError, ValueError) as e:
            return NoEnergy(f"RAPL counters unreadable: {e}")
    if not POWERCAP.exists():
        return NoEnergy("no energy sensor: /sys/class/powercap is absent (VM or non-Intel CPU) and no tegrastats")
    return NoEnergy("no energy sensor: no RAPL domain under /sys/class/powercap and no tegrastats")
