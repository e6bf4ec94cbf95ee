"""Atomic writes: a file or folder appears complete or not at all, even if the process is killed.

Everything edgebench stores (run records, models, IR folders, signatures, cache entries) is
written through here, so a kill or a full disk never leaves a half-written file that looks valid.
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgebench.core.errors import DiskFullError, StoreError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A scratch path beside `path` for the block to write (a file or a folder); it replaces
    `path` only when the block finishes, and is removed if the block raises. `suffix` keeps an
    extension that a writer insists on (np.savez appends .npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.partial{suffix}")
    _remove(scratch)
    try:
        yield scratch
        if scratch.is_file():
            with open(scratch, "rb") as f:
                os.fsync(f.fileno())
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(scratch, path)
    except BaseException:
        _remove(scratch)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text or bytes to `path` atomically; an OS error is a one-line StoreError."""
    try:
        with atomic_path(path) as scratch:
            scratch.write_bytes(data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise store_error(path, e) from None


def store_error(path: Path, e: OSError) -> StoreError:
    if e.errno == errno.ENOSPC:
        return DiskFullError(f"disk full while writing '{path}'; everything stored before is intact")
    return StoreError(f"cannot write '{path}': {e.strerror or e}")
