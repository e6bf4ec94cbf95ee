"""Run folders: append-only, resumable, safe against being killed at any moment.

    runs/<run-id>/
      run.json              what was asked (model, device, data, settings) and the environment
      measurements.jsonl    one JSON line per finished measurement, fsync'd, never rewritten
      candidates/<id>/      candidate.json + artifacts (model.onnx, openvino/, model.pt)
      report.*              rendered from the above, can be rebuilt with `edgebench report`

A line that was being written when the process died is ignored on reading (and the next append
starts on a fresh line); whole-file writes go to a temporary name and are renamed into place.
A lock file keeps two runs from writing the same folder.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any, Optional

from edgebench.core.atomic import store_error, write_atomic
from edgebench.core.errors import StoreError
from edgebench.core.records import CandidateInfo, Measurement

MEASUREMENTS = "measurements.jsonl"


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    rows: list[dict] = []
    if not path.is_file():
        return rows
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn write from a killed run; the measurement is simply redone
    return rows


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock_file: Optional[IO[str]] = None

    def __enter__(self) -> RunStore:
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def lock(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.root / ".lock", "w")
        except OSError as e:
            raise store_error(self.root, e) from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise StoreError(f"run folder '{self.root}' is in use by another edgebench process") from None

    def unlock(self) -> None:
        if self._lock_file:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # measurements ---------------------------------------------------------------------------
    @property
    def measurements_path(self) -> Path:
        return self.root / MEASUREMENTS

    def append(self, m: Measurement) -> None:
        line = json.dumps(m.to_dict(), sort_keys=True, default=str) + "\n"
        path = self.measurements_path
        try:
            with open(path, "ab") as f:
                if f.tell() > 0 and not _ends_with_newline(path):
                    f.write(b"\n")  # seal a torn line so this record parses on its own
                f.write(line.encode())
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise store_error(path, e) from None

    def measurements(self) -> list[Measurement]:
        """The latest record per key (a failed attempt that was retried is superseded)."""
        latest: dict[str, Measurement] = {}
        for row in read_jsonl(self.measurements_path):
            try:
                m = Measurement.from_dict(row)
            except TypeError:
                continue
            latest[m.key] = m
        return list(latest.values())

    def completed_keys(self) -> set[str]:
        return {m.key for m in self.measurements() if m.status in ("ok", "skipped")}

    # candidates -----------------------------------------------------------------------------
    def candidate_dir(self, candidate_id: str) -> Path:
        return self.root / "candidates" / candidate_id

    def save_candidate(self, info: CandidateInfo) -> None:
        write_json(self.candidate_dir(info.id) / "candidate.json", info.to_dict())

    def load_candidate(self, candidate_id: str) -> CandidateInfo | None:
        path = self.candidate_dir(candidate_id) / "candidate.json"
        if not path.is_file():
            return None
        try:
            info = CandidateInfo.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None
        if all((self.root / rel).exists() for rel in info.artifacts.values()):
            return info
        return None

    def candidates(self) -> list[CandidateInfo]:
        found = []
        for d in sorted((self.root / "candidates").glob("*")):
            info = self.load_candidate(d.name)
            if info:
                found.append(info)
        return found

    def write_run_info(self, info: dict) -> None:
        write_json(self.root / "run.json", info)

    def run_info(self) -> dict:
        path = self.root / "run.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
