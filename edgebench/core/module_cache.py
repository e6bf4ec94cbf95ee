"""Trained modules cached by content key in $EDGEBENCH_CACHE/modules/, shared by all runs.

Whole modules are pickled because compression changes architectures (a pruned model no longer
fits its factory), and unpickling runs code. So a cache entry is trusted exactly like a run
folder's model.pt: it is signed with this user's key when written (core/signing.py) and loaded only
when the signature matches. A file planted in the cache, or copied from another machine, is not
loaded: the module is built again and the entry replaced.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebench.core.atomic import atomic_path
from edgebench.core.cache import cache_dir
from edgebench.core.errors import UntrustedInputError
from edgebench.core.signing import sign, verify

# What torch.load raises on a damaged or outdated (signed) entry: such an entry is rebuilt.
DAMAGED = (pickle.UnpicklingError, EOFError, RuntimeError, AttributeError, ModuleNotFoundError, ImportError)


def module_path(key: str) -> Path:
    return cache_dir() / "modules" / f"{key}.pt"


def cached_module(key: str, build: Callable[[], Any]):
    """Return the module cached under `key`, or build, store (signed) and return it."""
    import torch

    path = module_path(key)
    if path.is_file():
        try:
            verify(path)
            return torch.load(str(path), map_location="cpu", weights_only=False)
        except (UntrustedInputError, *DAMAGED):
            path.unlink(missing_ok=True)
            Path(f"{path}.sig").unlink(missing_ok=True)
    module = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as scratch:
        torch.save(module, str(scratch))
    sign(path)
    return module
