"""What the gate compares: a run folder or a report.json, loaded with one-line errors for bad input,
and the environment check that decides whether two runs' latencies may be compared at all."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgebench.core.errors import CorruptInputError, IncompatibleError, NotFoundError
from edgebench.core.records import CandidateInfo, Measurement
from edgebench.core.sessions import session_environments
from edgebench.core.store import MEASUREMENTS, RunStore

# Fingerprint fields that change latency without changing the hardware: a difference is a warning.
SOFT_FIELDS = ("governor", "max_freq_mhz", "jetson_power_mode", "omp_num_threads", "logical_cores", "python")


@dataclass
class GateRun:
    label: str  # how the user named it (shown in every message)
    info: dict  # run.json
    candidates: dict[str, CandidateInfo]
    measurements: list[Measurement]  # measured (not estimated) and ok only
    environment: dict = field(default_factory=dict)
    sessions: dict[int, dict] = field(default_factory=dict)  # session id -> its environment fingerprint

    @property
    def hardware(self) -> Optional[str]:
        """What the figures were really measured on: the machine, not the profile asked for."""
        return self._hardware(self.environment)

    def environment_of(self, m: Measurement) -> dict:
        """The fingerprint of the session that measured this row (a resumed run may span several)."""
        return self.sessions.get(m.session, self.environment) if m.session is not None else self.environment

    def hardware_of(self, m: Measurement) -> Optional[str]:
        return self._hardware(self.environment_of(m))

    def _hardware(self, env: dict) -> Optional[str]:
        cpu = env.get("cpu_model")
        if not cpu:
            return self.info.get("measured_on_device")
        return f"{cpu} ({env.get('machine', '?')})"


def load_gate_run(path: Path, role: str) -> GateRun:
    """`role` is 'baseline' or 'current', for the messages."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{role} '{path}' does not exist")
    if path.is_dir():
        info, candidates, measurements = _from_folder(path, role)
    else:
        info, candidates, measurements = _from_report(path, role)
    # Estimates have no samples and are derived from the measurements: gating them would count twice.
    ok = [m for m in measurements if m.ok and m.source == "measured"]
    return GateRun(label=str(path), info=info, candidates={c.id: c for c in candidates}, measurements=ok,
                   environment=info.get("environment") or {}, sessions=session_environments(info))


def _from_folder(path: Path, role: str):
    if (path / "report.json").is_file() and not (path / MEASUREMENTS).is_file():
        return _from_report(path / "report.json", role)
    if not (path / "run.json").is_file() or not (path / MEASUREMENTS).is_file():
        raise CorruptInputError(f"{role} '{path}' is not an edgebench run folder (no run.json and {MEASUREMENTS})")
    store = RunStore(path)
    try:
        info = store.run_info()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptInputError(f"{role} '{path / 'run.json'}' is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise CorruptInputError(f"{role} '{path / 'run.json'}' must hold a JSON object")
    return info, store.candidates(), store.measurements()


def _from_report(path: Path, role: str):
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptInputError(f"{role} '{path}' is not a valid report.json: {e}") from None
    except OSError as e:
        raise NotFoundError(f"cannot read {role} '{path}': {e.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("measurements"), list):
        raise CorruptInputError(f"{role} '{path}' is not an edgebench report.json (no 'measurements' list)")
    try:
        candidates = [CandidateInfo.from_dict(c) for c in data.get("candidates") or []]
        measurements = [Measurement.from_dict(m) for m in data["measurements"]]
    except (TypeError, AttributeError) as e:
        raise CorruptInputError(f"{role} '{path}' has a malformed record: {e}") from None
    run = data.get("run") or {}
    if not isinstance(run, dict):
        raise CorruptInputError(f"{role} '{path}': 'run' must be a JSON object")
    return run, candidates, measurements


def environment_differences(baseline: GateRun, current: GateRun) -> tuple[Optional[str], list[str]]:
    """(why latency must not be compared, or None; warnings about differences that may matter)."""
    warnings: list[str] = []
    if not baseline.environment or not current.environment:
        which = "baseline" if not baseline.environment else "current"
        warnings.append(f"the {which} run has no environment fingerprint; cannot check that both ran alike")
    hw_b, hw_c = baseline.hardware, current.hardware
    if hw_b and hw_c and hw_b != hw_c:
        return f"baseline was measured on {hw_b} and current on {hw_c}", warnings
    env_b, env_c = baseline.environment, current.environment
    for name in SOFT_FIELDS:
        if env_b.get(name) != env_c.get(name) and name in env_b and name in env_c:
            warnings.append(f"{name} differs: baseline {env_b.get(name)}, current {env_c.get(name)}")
    versions_b, versions_c = env_b.get("versions") or {}, env_c.get("versions") or {}
    for package in sorted(set(versions_b) & set(versions_c)):
        if versions_b[package] != versions_c[package] and package != "edgebench":
            warnings.append(f"{package} differs: baseline {versions_b[package]}, current {versions_c[package]}")
    if env_b.get("hostname") and env_c.get("hostname") and env_b["hostname"] != env_c["hostname"]:
        warnings.append(f"measured on different machines of the same kind ({env_b['hostname']} and "
                        f"{env_c['hostname']}); `edgebench gate --baseline-model/--current-model` measures both "
                        f"in one session, which is robust to that")
    return None, warnings


def refuse_across_devices(baseline: GateRun, current: GateRun) -> list[str]:
    reason, warnings = environment_differences(baseline, current)
    if reason:
        raise IncompatibleError(f"refusing a latency verdict across different devices: {reason}")
    return warnings
