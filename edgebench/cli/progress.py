"""Progress bars and stage lines for the terminal (rich)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from edgebench.core.records import Measurement


class RichReporter:
    def __init__(self, console: Console):
        self.console = console
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def stage(self, name: str) -> None:
        self.console.print(f"[bold cyan]>[/bold cyan] {escape(name)}", highlight=False)

    def progress(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self.bars.add_task(escape(label), total=total)
        self.bars.update(self._tasks[label], completed=done, total=total)

    def measured(self, m: Measurement) -> None:
        if m.ok:
            acc = f", top-1 {100 * m.top1:.1f}%" if m.top1 is not None else ""
            self.console.print(escape(f"  {m.candidate} / {m.backend} / {m.precision}"
                                      f" ({m.executed_precision}): {m.median_ms:.3f} ms{acc}"), highlight=False)
        else:
            self.console.print("  [red]" + escape(f"{m.candidate} / {m.backend} / {m.precision}: {m.status}: "
                                                  f"{m.error}") + "[/red]", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"  [yellow]{escape(text)}[/yellow]", highlight=False)
