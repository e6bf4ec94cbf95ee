"""Run folders: append-only, resumable, safe against being killed at any moment.

    runs/<run-id>/
      run.json              what was asked (model, device, data, settings) and the environment
      measurements.jsonl    one JSON line per finished measurement, fsync'd, never rewritten
      candidates/<id>/      candidate.json + artifacts (model.onnx, openvino/, model.pt)
      report.*              rendered from the above, can be rebuilt with `edgebench report`

A line that was being written when the process died, or any line that is not a valid record, is
left out on reading with its reason in `dropped` (reports show it); `compare` moves such lines to
quarantine.jsonl before resuming (the next append starts on a fresh line anyway); whole-file
writes go to a temporary name and are renamed into place.
A lock file keeps two runs from writing the same folder.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any, Optional

from edgebench.core import validate
from edgebench.core.atomic import store_error, write_atomic
from edgebench.core.errors import CorruptInputError, FolderInUseError
from edgebench.core.records import CandidateInfo, Measurement

MEASUREMENTS = "measurements.jsonl"
QUARANTINE = "quarantine.jsonl"  # lines that were not valid records, moved out of the way


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file; lines that are not one are left out (see `read_lines`)."""
    return [row for _, row, problem in read_lines(path) if problem is None]


def read_lines(path: Path) -> list[tuple[bytes, Any, str | None]]:
    """(raw line, parsed value or None, why it is unreadable or None) for each non-empty line."""
    found: list[tuple[bytes, Any, str | None]] = []
    if not path.is_file():
        return found
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A line with no newline after it was being written when a run was killed.
            why = "a torn line (a write cut short)" if i == last else "a line that is not valid JSON"
            found.append((raw, None, why))
            continue
        found.append((raw, row, None if isinstance(row, dict) else f"a JSON {type(row).__name__}, not an object"))
    return found


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock_file: Optional[IO[str]] = None
        self.dropped: dict[str, str] = {}  # what reading left out -> why, for the terminal and the report

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
            raise FolderInUseError(f"run folder '{self.root}' is in use by another edgebench process") from None

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
        """The latest record per key (a failed attempt that was retried is superseded). Lines
        that are not a valid record are left out and listed in `dropped`."""
        latest: dict[str, Measurement] = {}
        for number, (_, row, problem) in enumerate(read_lines(self.measurements_path), 1):
            if problem is None:
                try:
                    m = validate.measurement(row)
                except validate.InvalidRecord as e:
                    problem = f"not a valid measurement ({e})"
            if problem:
                self.dropped[f"{MEASUREMENTS} line {number}"] = problem
                continue
            latest[m.key] = m
        return list(latest.values())

    def quarantine(self) -> int:
        """Move the lines that are not valid records into quarantine.jsonl beside, so that a bad
        line neither blocks a resume nor is read again; needs the lock. Returns how many moved."""
        lines = read_lines(self.measurements_path)
        good: list[bytes] = []
        bad: list[bytes] = []
        for raw, row, problem in lines:
            if problem is None:
                try:
                    validate.measurement(row)
                except validate.InvalidRecord:
                    problem = "invalid"
            (bad if problem else good).append(raw)
        if not bad:
            return 0
        try:
            with open(self.root / QUARANTINE, "ab") as f:
                f.write(b"".join(raw + b"\n" for raw in bad))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise store_error(self.root / QUARANTINE, e) from None
        write_atomic(self.measurements_path, b"".join(raw + b"\n" for raw in good))
        return len(bad)

    def completed_keys(self) -> set[str]:
        return {m.key for m in self.measurements() if m.status in ("ok", "skipped")}

    # candidates -----------------------------------------------------------------------------
    def candidate_dir(self, candidate_id: str) -> Path:
        return self.root / "candidates" / candidate_id

    def save_candidate(self, info: CandidateInfo) -> None:
        write_json(self.candidate_dir(info.id) / "candidate.json", info.to_dict())

    def load_candidate(self, candidate_id: str) -> CandidateInfo | None:
        """The stored candidate, or None (and the reason in `dropped`) when it is missing, unreadable
        or lacks an artifact."""
        path = self.candidate_dir(candidate_id) / "candidate.json"
        if not path.is_file():
            return None
        try:
            info = validate.candidate(json.loads(path.read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.dropped[f"candidate {candidate_id}"] = "candidate.json is not valid JSON"
            return None
        except validate.InvalidRecord as e:
            self.dropped[f"candidate {candidate_id}"] = f"candidate.json is not a valid candidate ({e})"
            return None
        missing = [rel for rel in info.artifacts.values() if not (self.root / rel).exists()]
        if missing:
            self.dropped[f"candidate {candidate_id}"] = f"artifact '{missing[0]}' is missing"
            return None
        self.dropped.pop(f"candidate {candidate_id}", None)
        return info

    def candidates(self) -> list[CandidateInfo]:
        found = []
        for d in sorted((self.root / "candidates").glob("*")):
            if not d.is_dir() or ".step" in d.name:
                continue  # intermediate steps of a recipe are not candidates
            info = self.load_candidate(d.name)
            if info:
                found.append(info)
        return found

    def write_run_info(self, info: dict) -> None:
        write_json(self.root / "run.json", info)

    def run_info(self) -> dict:
        """run.json, checked; a file that is not one edgebench wrote is a one-line error."""
        path = self.root / "run.json"
        if not path.is_file():
            return {}
        try:
            return validate.run_info(json.loads(path.read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorruptInputError(f"'{path}' is not valid JSON ({e}); move it away to start the run afresh") from None
        except validate.InvalidRecord as e:
            raise CorruptInputError(f"'{path}' is not a run.json written by edgebench ({e})") from None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
