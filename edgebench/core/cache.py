"""Content-addressed cache for expensive artifacts (trained models), shared by all runs.

A trained module is keyed by everything that determines it (architecture, initial weights, data
fingerprint, recipe, epochs, seed), so rerunning a command, or another command that needs the
same training, reuses it instead of training again. Location: $EDGEBENCH_CACHE or
~/.cache/edgebench.
"""
from __future__ import annotations

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
