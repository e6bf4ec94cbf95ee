"""Rows for what was planned but not measured, so that every recipe x runtime x precision shows up
in the report whatever happened: a runtime that is not installed or lacks the processor
("unavailable", with the extra that brings it), a candidate with no artifact a runtime can load
("skipped", with why), and a recipe that did not build ("skipped" when a pass does not apply,
"failed" with the error)."""
from __future__ import annotations

import time
from typing import Optional

from edgebench.core.records import CandidateInfo, Measurement, measurement_key

BUILD = "(build)"  # the backend of a recipe's build row


def not_run(info: CandidateInfo, runtime: str, processor: str, precision: str, device: str, measured_on: str,
            status: str, reason: str, shape: Optional[str] = None, batch_size: int = 1,
            scenario: str = "single-stream") -> Measurement:
    return Measurement(key=measurement_key(info.id, runtime, processor, precision, device, batch_size, shape, scenario),
                       candidate=info.id, backend=runtime, processor=processor, precision=precision, device=device,
                       source="measured", status=status, error=reason, measured_on=measured_on, shape=shape,
                       timestamp=time.time(), batch_size=batch_size, scenario=scenario)


def build_key(recipe: str, device: str) -> str:
    return measurement_key(f"recipe:{recipe}", BUILD, "-", "-", device)


def build_row(recipe: str, status: str, reason: str, device: str) -> Measurement:
    """A recipe's build outcome; an "ok" one supersedes an earlier skip or failure of the same recipe."""
    return Measurement(key=build_key(recipe, device), candidate=recipe,
                       backend=BUILD, processor="-", precision="-", device=device, source="measured", status=status,
                       error=reason or None, timestamp=time.time())


def unavailable_reason(runtime: str, avail, extra: str) -> str:
    install = avail.install or (f"pip install '{extra}'" if extra else "")
    return f"{runtime} is not usable here: {avail.reason or 'unavailable'}" + (f"; {install}" if install else "")
