"""Where measurement tasks run. `local` runs each in an isolated worker process on this machine,
one at a time so measurements never disturb each other. Other executors (Ray) plug in here."""
from __future__ import annotations

from typing import Callable, Iterable, Protocol

from .types import Measurement
from .worker import MeasureTask, run_isolated

OnResult = Callable[[Measurement], None]


class Executor(Protocol):
    name: str

    def run(self, tasks: Iterable[MeasureTask], on_result: OnResult) -> None: ...


class LocalExecutor:
    name = "local"

    def run(self, tasks: Iterable[MeasureTask], on_result: OnResult) -> None:
        for task in tasks:
            on_result(run_isolated(task))


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor}


def make_executor(name: str, **options) -> Executor:
    from .errors import NotFoundError, closest

    if name not in EXECUTORS:
        raise NotFoundError(f"unknown executor '{name}'{closest(name, EXECUTORS)}")
    return EXECUTORS[name](**options)
