"""Merging measurements taken elsewhere (`edgebench measure` on the device) into a run's store."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.core.errors import NotFoundError
from edgebench.core.records import Measurement
from edgebench.core.store import MEASUREMENTS, RunStore, read_jsonl


@dataclass(frozen=True)
class MergeResult:
    added: int
    conflicts: int  # rows for a key the run already holds measured on another machine (both called `host`)


def merge_measurements(store: RunStore, source: Path) -> MergeResult:
    """Append the rows of `source` (a folder with measurements.jsonl, or the file) that `store` does
    not hold yet; the store keeps the latest row per key, so a remeasured row supersedes, and so
    does the device's measurement of a row the builder could only estimate (the usual case: a run
    built for a Jetson holds estimated Jetson rows under the keys the Jetson then measures). A row
    whose key the store already has *measured* on another machine (two undetected machines are
    both `host`) is not merged: it would silently replace that machine's figures."""
    path = source / MEASUREMENTS if source.is_dir() else source
    if not path.is_file():
        raise NotFoundError(f"no measurements to merge at '{source}' (expected {MEASUREMENTS})")
    stored = read_jsonl(store.measurements_path)
    have = {(row.get("key"), row.get("timestamp")) for row in stored}
    machine = {row.get("key"): row.get("measured_on") for row in stored if row.get("source") == "measured"}
    added = conflicts = 0
    for row in read_jsonl(path):
        if (row.get("key"), row.get("timestamp")) in have:
            continue
        if row.get("key") in machine and machine[row.get("key")] != row.get("measured_on"):
            conflicts += 1
            continue
        try:
            m = Measurement.from_dict(row)
        except TypeError:
            continue  # a torn or foreign line; the store skips those too
        store.append(m)
        added += 1
    return MergeResult(added, conflicts)
