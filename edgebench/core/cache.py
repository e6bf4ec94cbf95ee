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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebench.core.atomic import atomic_path


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


def cached_module(key: str, build: Callable[[], Any]):
    """Return the module cached under `key`, or build, store and return it.

    Whole modules are pickled because compression changes architectures (a pruned model no longer
    fits its factory). These files are written by edgebench itself into the user's own cache,
    which is why loading them with weights_only=False is acceptable here and nowhere else.
    """
    import torch

    path = cache_dir() / "modules" / f"{key}.pt"
    if path.is_file():
        try:
            return torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a damaged cache entry (any unpickling error) is rebuilt, not fatal
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, not fatal
    module = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as scratch:
        torch.save(module, str(scratch))
    return module
