"""User-facing errors. Each subclass carries its own exit code so CI scripts can tell them apart.

The CLI prints `error: <message>` on one line and exits with `exit_code`; a traceback is shown
only with `--debug`. Anything a user can cause (a bad path, a corrupt file, an unknown name)
raises one of these; anything else is a bug and is allowed to crash loudly.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgebenchError(Exception):
    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(EdgebenchError):
    """Bad option values or combinations."""
    exit_code = 2


class NotFoundError(EdgebenchError):
    """A file, model, device, runtime or recipe that does not exist."""
    exit_code = 3


class CorruptInputError(EdgebenchError):
    """A file exists but cannot be read as what it claims to be (ONNX, checkpoint, YAML, IR)."""
    exit_code = 4


class IncompatibleError(EdgebenchError):
    """Things that exist but do not fit together: input shapes, class counts, precisions."""
    exit_code = 5


class RuntimeUnavailableError(EdgebenchError):
    """A runtime or hardware that is not installed or not present on this machine."""
    exit_code = 6


class UntrustedInputError(EdgebenchError):
    """A file that would run code when loaded (a pickle with globals) and was not trusted."""
    exit_code = 7


class StoreError(EdgebenchError):
    """The run folder cannot be written (full disk, permissions)."""
    exit_code = 8


class DiskFullError(StoreError):
    """No space left while writing; everything stored before is intact."""
    exit_code = 8


class FolderInUseError(StoreError):
    """Another edgebench process holds the run folder's lock."""
    exit_code = 9


class RunSettingsMismatch(UsageError):
    """A run folder belongs to one set of settings; a rerun with others would mix their rows.
    (12 is main's BusyMachineError.)"""
    exit_code = 15


def closest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix for an unknown name, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


class RegressionFound(EdgebenchError):
    """`edgebench gate`: the current run is slower, less accurate or larger than allowed.
    Not a usage error: its own code lets CI tell a regression from a broken invocation."""
    exit_code = 10


class NothingToCompareError(EdgebenchError):
    """`edgebench gate`: baseline and current share no candidate x runtime x device to compare."""
    exit_code = 11


class BusyMachineError(EdgebenchError):
    """Other processes are using the CPUs: a figure measured now would describe them, not this machine."""
    exit_code = 12


class MeasurementsFailed(EdgebenchError):
    """`edgebench compare`: the report was written, but at least one planned measurement (or a
    recipe's build) failed; the report lists each failure with its message."""
    exit_code = 13


class NothingMeasured(EdgebenchError):
    """`edgebench compare`: the report was written, but it holds no successful measurement."""
    exit_code = 14
