"""The guard every benchmark shares: it records the load the benchmark ran at, and refuses to write
results when other processes were using the CPUs (`--allow-busy` overrides, for those who know
the figures will say so).

    guard = quiet.start(args)            # right after parse_args: samples the load before
    data["load"] = guard.check_writable()  # right before writing: the load during, or exit 3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgebench.measure.contention import LoadProbe, busy_reasons, sample_load  # noqa: E402

BUSY_EXIT = 3


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-busy", action="store_true",
                        help="write results even when other processes were using the CPUs (they are marked busy)")


class QuietGuard:
    def __init__(self, allow_busy: bool):
        self.allow_busy = allow_busy
        self.before = sample_load(1.0)
        self.reasons_before = busy_reasons(self.before)
        if self.reasons_before:
            print(f"warning: the machine is busy ({'; '.join(self.reasons_before)}); results will "
                  + ("be marked busy" if allow_busy else "not be written (--allow-busy overrides)"), file=sys.stderr)
        # children: compare and gate workers are child processes; their CPU is the benchmark's own
        self._probe = LoadProbe(children=True)

    def check_writable(self) -> dict:
        during = self._probe.stop()
        reasons = [f"before: {r}" for r in self.reasons_before]
        reasons += [f"during: {r}" for r in busy_reasons(during, include_load=False)]
        record = {"busy": bool(reasons), "reasons": reasons, "before": self.before.to_dict(),
                  "during": during.to_dict(), "allow_busy": self.allow_busy}
        if reasons and not self.allow_busy:
            print("not writing results: the machine was busy (" + "; ".join(reasons) + "). Rerun on a quiet "
                  "machine, or pass --allow-busy to write them marked as busy.", file=sys.stderr)
            raise SystemExit(BUSY_EXIT)
        return record


def start(args: argparse.Namespace) -> QuietGuard:
    return QuietGuard(getattr(args, "allow_busy", False))
