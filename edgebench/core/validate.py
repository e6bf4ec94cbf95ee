"""Stored records checked on read: a run folder's lines and files come from disk, where a torn
write, a hand edit or another tool can leave anything. Each record is validated against the
dataclass it claims to be (pydantic, strict JSON mode, so "1.5" is not a float and a list is not
a dict) and its nested parts against theirs, so that nothing downstream meets a value of the
wrong type. A record that fails is an `InvalidRecord` with a one-line reason, never a traceback.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from edgebench.core.records import SCENARIOS, AccuracyResult, CandidateInfo, LatencyStats, Measurement, ThroughputStats

STATUSES = ("ok", "failed", "skipped", "unavailable")
SOURCES = ("measured", "estimated")


class InvalidRecord(ValueError):
    """A stored record that is not what edgebench writes; the message says which field and why."""


class _Layer(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    time_us: Optional[float] = None


class _LineageStep(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    pass_: str
    config: Optional[dict[str, Any]] = None

    @classmethod
    def check(cls, step: Any) -> None:
        if not isinstance(step, dict):
            raise InvalidRecord("a lineage step is not a JSON object")
        cls.model_validate_json(json.dumps({"pass_": step.get("pass"), "config": step.get("config")}))


class RunInfo(BaseModel):
    """The fields of run.json that the reports read; everything else is kept as written."""
    model_config = ConfigDict(extra="allow", strict=True)
    model_name: Optional[str] = None
    device: Optional[str] = None
    measured_on: Optional[str] = None
    figures_are_target: bool = True
    input_shape: Optional[list[int]] = None
    environment: dict[str, Any] = {}
    sessions: list[dict[str, Any]] = []


_MEASUREMENT = TypeAdapter(Measurement)
_CANDIDATE = TypeAdapter(CandidateInfo)
_LATENCY = TypeAdapter(LatencyStats)
_ACCURACY = TypeAdapter(AccuracyResult)
_THROUGHPUT = TypeAdapter(ThroughputStats)
_SAMPLES = TypeAdapter(tuple[float, ...])
_LAYERS = TypeAdapter(tuple[_Layer, ...])
_STRINGS = TypeAdapter(dict[str, str])
_SIZES = TypeAdapter(dict[str, int])
_SHAPE = TypeAdapter(tuple[int, ...])
_NOTES = TypeAdapter(tuple[str, ...])


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"{where}: {err.get('msg', 'invalid')}"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise InvalidRecord("holds NaN or infinity") from None


def measurement(row: Any) -> Measurement:
    if not isinstance(row, dict):
        raise InvalidRecord(f"a {type(row).__name__}, not a JSON object")
    try:
        m = _MEASUREMENT.validate_json(_json(row), strict=True)
        if m.latency is not None:
            _LATENCY.validate_json(_json(m.latency), strict=True)
        if m.accuracy is not None:
            _ACCURACY.validate_json(_json(m.accuracy), strict=True)
        if m.throughput is not None:
            _THROUGHPUT.validate_json(_json(m.throughput), strict=True)
        _SAMPLES.validate_json(_json(list(m.samples_ms)), strict=True)
        _LAYERS.validate_json(_json(list(m.layers)), strict=True)
    except ValidationError as e:
        raise InvalidRecord(_first_error(e)) from None
    if m.status not in STATUSES:
        raise InvalidRecord(f"status: '{m.status}' is none of {', '.join(STATUSES)}")
    if m.source not in SOURCES:
        raise InvalidRecord(f"source: '{m.source}' is none of {', '.join(SOURCES)}")
    if m.scenario not in SCENARIOS:
        raise InvalidRecord(f"scenario: '{m.scenario}' is none of {', '.join(SCENARIOS)}")
    if m.status == "ok" and m.latency is None and m.backend != "(build)":
        raise InvalidRecord("status is ok but there is no latency")
    return m


def candidate(data: Any) -> CandidateInfo:
    if not isinstance(data, dict):
        raise InvalidRecord(f"a {type(data).__name__}, not a JSON object")
    try:
        info = _CANDIDATE.validate_json(_json(data), strict=True)
        _STRINGS.validate_json(_json(info.artifacts), strict=True)
        _SIZES.validate_json(_json(info.file_bytes), strict=True)
        _SHAPE.validate_json(_json(list(info.input_shape)), strict=True)
        _NOTES.validate_json(_json(list(info.notes)), strict=True)
        for step in info.lineage:
            _LineageStep.check(step)
    except ValidationError as e:
        raise InvalidRecord(_first_error(e)) from None
    return info


def run_info(data: Any) -> dict:
    if not isinstance(data, dict):
        raise InvalidRecord(f"a {type(data).__name__}, not a JSON object")
    try:
        RunInfo.model_validate_json(_json(data))
    except ValidationError as e:
        raise InvalidRecord(_first_error(e)) from None
    return data
