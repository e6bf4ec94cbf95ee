"""What `compare` exits with: the report is always written first, then a run in which a planned
measurement (or a recipe's build) failed, or nothing at all was measured, ends non-zero so that a
script or CI job notices; docs in README.md, "Exit codes"."""
from __future__ import annotations

from pathlib import Path

from edgebench.core.errors import EdgebenchError, MeasurementsFailed, NothingMeasured
from edgebench.core.records import Measurement
from edgebench.measure.unplanned import BUILD


def counts(measurements: list[Measurement]) -> dict[str, int]:
    planned = [m for m in measurements if m.source == "measured"]
    return {"measured": sum(1 for m in planned if m.ok and m.backend != BUILD),
            "failed": sum(1 for m in planned if m.status == "failed"),
            "skipped": sum(1 for m in planned if m.status == "skipped"),
            "unavailable": sum(1 for m in planned if m.status == "unavailable"),
            "estimated": sum(1 for m in measurements if m.source == "estimated" and m.ok)}


def outcome_error(measurements: list[Measurement], run_dir: Path) -> EdgebenchError | None:
    n = counts(measurements)
    report = Path(run_dir) / "report.html"
    if n["failed"]:
        return MeasurementsFailed(f"{n['failed']} planned measurement(s) or build(s) failed "
                                  f"({n['measured']} measured); each is in {report} with its message")
    if not n["measured"]:
        return NothingMeasured(f"nothing was measured ({n['skipped']} skipped, {n['unavailable']} unavailable); "
                               f"{report} says why for each")
    return None
