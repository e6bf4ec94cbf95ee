"""Signatures for the pickled torch modules edgebench writes into run folders.

A compressed model's architecture differs from its factory's (pruned channels, rewritten
convolutions), so the PyTorch artifact is a whole pickled module, and unpickling runs code. Such a
file is only loaded when it carries an HMAC made with this user's secret key (kept in the cache
folder, mode 0600): a run folder copied from elsewhere, or a model.pt planted in one, is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from edgebench.core.atomic import write_atomic
from edgebench.core.cache import cache_dir
from edgebench.core.errors import UntrustedInputError


def _key() -> bytes:
    path = cache_dir() / "signing.key"
    if not path.is_file():
        tmp = path.with_name(f".signing.key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # first writer wins; concurrent writers then read the same key
        except FileExistsError:
            pass
        tmp.unlink()
    return path.read_bytes()


def _digest(path: Path) -> str:
    mac = hmac.new(_key(), digestmod=hashlib.sha256)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            mac.update(chunk)
    return mac.hexdigest()


def sign(path: Path) -> None:
    sig = Path(f"{path}.sig")
    write_atomic(sig, _digest(path))


def verify(path: Path) -> None:
    sig = Path(f"{path}.sig")
    if not sig.is_file() or not hmac.compare_digest(sig.read_text().strip(), _digest(path)):
        raise UntrustedInputError(
            f"'{path}' was not written by this user's edgebench (missing or wrong signature); "
            "pickled modules from elsewhere are not loaded, since loading them runs code")


def trusted_sha256(path: Path) -> str:
    """Verify the signature here and return the file's SHA-256, so that a worker elsewhere (a Ray
    node with another key) can trust the bytes it receives by their hash alone."""
    verify(path)
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_artifact(path: Path, expected_sha256: str | None) -> None:
    """Trust a pickled module by the hash its (trusted) sender computed, else by this user's signature."""
    if expected_sha256 is None:
        verify(path)
    elif file_sha256(path) != expected_sha256:
        raise UntrustedInputError(f"'{path}' does not match the hash of the artifact that was sent; refused")
