"""pandas access to runs: `edgebench.load_run(path)`."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.core.errors import NotFoundError
from edgebench.report.table import load_tables

if TYPE_CHECKING:
    import pandas


def load_run(path) -> pandas.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"run '{path}' does not exist")
    run, _, _, rows = load_tables(path)
    frame = pd.DataFrame(rows)
    frame.attrs["run"] = run
    return frame
