"""Content-addressed cache for expensive artifacts (trained models), shared by all runs.

A trained module is keyed by everything that determines it (architecture, initial weights, data
fingerprint, recipe, epochs, seed, and the source of the code that trains it), so rerunning a
command, or another command that needs the same training, reuses it instead of training again,
and a changed pass or training loop never serves a module the old code trained. Location: $EDGEBENCH_CACHE or
~/.cache/edgebench.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    root = Path(os.environ.get("EDGEBENCH_CACHE", Path.home() / ".cache" / "edgebench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def content_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def module_fingerprint(model) -> str:
    """Hash of a module's structure and weights, to key work that starts from it."""
    h = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def code_digest() -> str:
    """Hash of all of edgebench's Python source: which code built a run folder's candidates and
    measured its rows (core/sessions.py refuses to mix two)."""
    return source_digest("edgebench")


@functools.cache
def source_digest(*modules: str) -> str:
    """Hash of the Python source of edgebench `modules` (dotted names; a package means every file
    in it), for the keys of modules that code trains."""
    package = Path(__file__).resolve().parent.parent  # edgebench/
    h = hashlib.sha256()
    for name in modules:
        target = package.joinpath(*name.split(".")[1:])
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"source_digest: no source for {name}")
        for f in files:
            h.update(f.relative_to(package).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]

