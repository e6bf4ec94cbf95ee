"""The terminal consoles, light to import (the CLI loads the rest per command)."""
from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 10_000  # wide enough that no table cell or line is ever wrapped for a script reading it


def make_console(stderr: bool = False) -> Console:
    """A console for the terminal; when the stream is a pipe or file, plain full-width text, so
    `edgebench backends | grep onnxruntime` finds whole lines."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH, no_color=True, soft_wrap=True)
