"""Flags grouped by what they say: a run measured on a busy machine flags most of its rows for the
same reason, and forty copies of one warning hide the one flag that matters. Every format shows
one line per kind with the rows it concerns; each row's own text stays in the table and results."""
from __future__ import annotations

from dataclasses import dataclass, field

# What a kind of flag means, said once for all its rows; a kind not here is its first row's text.
HEADLINES = {
    "busy": "measured while the machine was busy: unreliable, left out of the Ship pick",
    "below the physical bound": "the estimator predicted less than the device's physical lower bound; shown at the bound",
    "int8 slower": "INT8 slower than its FP32 parent on the same runtime",
    "placement": "the rows' medians, from separate processes, disagree with the candidate timed against the baseline "
                 "in one process: a process's placement moved one of them (--processes 3 or more measures that spread)",
}
# A kind with this many rows or more is shown as one line; fewer are listed row by row.
GROUP_FROM = 3


def add_flag(row: dict, kind: str, text: str) -> None:
    """Flag a report row: `text` says it for this row, `kind` groups it with others that say the same."""
    row["flags"].append(text)
    row.setdefault("flag_kinds", []).append(kind)


@dataclass
class FlagGroup:
    kind: str
    headline: str
    entries: list[tuple[dict, str]] = field(default_factory=list)  # (row, its own text)

    @property
    def grouped(self) -> bool:
        return len(self.entries) >= GROUP_FROM


def group_flags(rows: list[dict]) -> list[FlagGroup]:
    """The rows' flags by kind, in the order kinds first appear."""
    groups: dict[str, FlagGroup] = {}
    for row in rows:
        kinds = row.get("flag_kinds") or []
        for i, text in enumerate(row.get("flags") or []):
            kind = kinds[i] if i < len(kinds) else text  # rows stored before kinds existed
            group = groups.setdefault(kind, FlagGroup(kind, HEADLINES.get(kind, text)))
            group.entries.append((row, text))
    return list(groups.values())
