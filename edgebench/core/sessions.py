"""Sessions of a run folder: each `compare` into it (the first, and every resume) is one entry in
run.json's `sessions`, with its start time, settings and environment fingerprint, and every row
it stores carries the session's id. A folder belongs to one set of settings and one version of
edgebench's code: a rerun with other settings, or after the code changed, would put rows of two
different experiments side by side (an old baseline beside new candidates, or candidates the old
code built beside rows the new code measured), so it is refused with the differences named.
"""
from __future__ import annotations

import json
import time
from typing import Any

from edgebench.core.errors import RunSettingsMismatch, UsageError
from edgebench.core.store import RunStore

# Settings that do not change what a row means: where things go, how measurements are dispatched,
# which recipes, runtimes and device this invocation adds (rows are keyed by them: one folder may
# hold a model's runs on several cluster devices), trusting a checkpoint.
NOT_RESULT_SETTINGS = ("runs_dir", "run_name", "executor", "executor_options", "measure_timeout_s", "recipes",
                       "runtimes", "device", "trust_checkpoint", "build_timeout_s", "wait_quiet_s")

# The key under which a session's settings hold the digest of the code that ran it.
CODE = "edgebench code"


def check_run_name(name: str) -> str:
    """A run name is a folder name inside --runs-dir, never a path that leads elsewhere."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name.startswith("~"):
        raise UsageError(f"--name {name!r} is not a plain folder name (no '/', '..' or absolute paths); "
                         f"use --runs-dir to choose where runs go")
    return name


def result_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The options that decide a row's figures, as plain JSON values."""
    kept = {k: v for k, v in options.items() if k not in NOT_RESULT_SETTINGS}
    return json.loads(json.dumps(kept, sort_keys=True, default=str))


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differences(old: dict, new: dict) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [f"{k} {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def past_sessions(info: dict) -> list[dict]:
    """run.json's sessions; a run.json from before sessions counts as one."""
    if info.get("sessions"):
        return list(info["sessions"])
    if not info:
        return []
    return [{"id": 1, "started": info.get("started"), "settings": result_settings(info.get("options") or {}),
             "environment": info.get("environment") or {}}]


def start_session(store: RunStore, info: dict, environment: dict, code: str) -> int:
    """Append this invocation's session to run.json and return its id; refuse when the folder was
    made with other settings or by other code. `info` is this invocation's run description (with
    `options`); `code` the digest of edgebench's source (cache.code_digest)."""
    sessions = past_sessions(store.run_info())
    settings = {**result_settings(info.get("options") or {}), CODE: code}
    if sessions:
        # Both sides filtered by today's list: a setting found not to change results since the
        # folder was made does not block its resume. A folder from before sessions recorded the
        # code shows it as '(unset)': which code built its candidates is unknown.
        changed = differences(result_settings(sessions[0].get("settings") or {}), settings)
        if changed:
            shown = "; ".join(changed[:6]) + (f" (+{len(changed) - 6} more)" if len(changed) > 6 else "")
            raise RunSettingsMismatch(
                f"run folder '{store.root}' holds a run with other settings ({shown}); its rows would mix with "
                f"this command's: use another --name, or leave --name out for a folder per settings and code")
    session = max((int(s.get("id") or 0) for s in sessions), default=0) + 1
    sessions.append({"id": session, "started": time.time(), "settings": settings, "environment": environment})
    store.write_run_info({**info, "environment": environment, "sessions": sessions, "session": session})
    return session


def session_environments(info: dict) -> dict[int, dict]:
    """Session id -> the environment fingerprint it ran in."""
    return {int(s["id"]): s.get("environment") or {} for s in past_sessions(info)
            if isinstance(s, dict) and isinstance(s.get("id"), int)}
