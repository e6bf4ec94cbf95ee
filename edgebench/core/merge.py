"""Merging measurements taken elsewhere (`edgebench measure` on the device) into a run's store."""
from __future__ import annotations

from pathlib import Path

from edgebench.core.errors import NotFoundError
from edgebench.core.records import Measurement
from edgebench.core.store import MEASUREMENTS, RunStore, read_jsonl


def merge_measurements(store: RunStore, source: Path) -> int:
    """Append the rows of `source` (a folder with measurements.jsonl, or the file) that `store` does
    not hold yet; the store keeps the latest row per key, so a remeasured row supersedes. Returns
    how many rows were added."""
    path = source / MEASUREMENTS if source.is_dir() else source
    if not path.is_file():
        raise NotFoundError(f"no measurements to merge at '{source}' (expected {MEASUREMENTS})")
    have = {(row.get("key"), row.get("timestamp")) for row in read_jsonl(store.measurements_path)}
    added = 0
    for row in read_jsonl(path):
        if (row.get("key"), row.get("timestamp")) in have:
            continue
        try:
            m = Measurement.from_dict(row)
        except TypeError:
            continue  # a torn or foreign line; the store skips those too
        store.append(m)
        added += 1
    return added
