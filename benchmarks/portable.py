"""Results that say nothing about the machine's folders: paths inside this checkout become
relative, the interpreter becomes `python`, and a scratch path (temp folder, home) keeps only its
last part, as `<tmp>/NAME`. Every benchmark passes what it writes to benchmarks/results through it."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SCRATCH = sorted({"/tmp", tempfile.gettempdir(), str(Path.home())}, key=len, reverse=True)
_SCRATCH_PATH = re.compile("(?:" + "|".join(re.escape(p) for p in _SCRATCH) + r")/[^\s\"'`,;)]*")


def portable(value):
    """`value` (str, or lists/tuples/dicts of them, any depth) with machine paths taken out."""
    if isinstance(value, str):
        text = value.replace(sys.executable, "python").replace(str(ROOT) + os.sep, "")
        return _SCRATCH_PATH.sub(lambda m: "<tmp>/" + Path(m.group(0)).name, text)
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value
