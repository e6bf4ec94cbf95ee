"""Where measurement tasks run. `local` runs each in an isolated worker process on this machine,
one at a time so measurements never disturb each other (a configuration's several processes
interleaved with the others'); `ray` (ray_executor.py) runs them as Ray
tasks on the cluster nodes that advertise the device."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from edgebench.backends import Availability, availability
from edgebench.core.errors import NotFoundError, closest
from edgebench.core.records import Measurement
from edgebench.execute.ray.executor import RayExecutor  # imports Ray only when asked for
from edgebench.measure.processes import run_interleaved
from edgebench.measure.worker import MeasureTask, run_isolated

OnResult = Callable[[Measurement], None]


class Executor(Protocol):
    name: str

    def offers(self, profile) -> bool:
        """Whether measurements for this device profile can run on the device itself."""

    def availability_on(self, profile) -> Callable[[str], Availability]:
        """Runtime name -> its availability where the profile's measurements will run."""

    def prebuild(self, builder, recipes: list, reporter) -> None:
        """Build the recipes' candidates elsewhere into the run folder before the pipeline's own
        build loop, which then finds them stored; a no-op where builds happen in that loop."""

    def run(self, tasks: Iterable[MeasureTask], on_result: OnResult) -> None: ...


class LocalExecutor:
    name = "local"

    def offers(self, profile) -> bool:
        return False  # only this machine, which pipeline.measurement_target already recognises

    def availability_on(self, profile) -> Callable[[str], Availability]:
        return availability

    def prebuild(self, builder, recipes: list, reporter) -> None:
        pass

    def run(self, tasks: Iterable[MeasureTask], on_result: OnResult) -> None:
        """One task at a time; a task of several processes has them spread over the whole stage,
        interleaved with the other tasks' (measure/processes.py)."""
        run_interleaved(list(tasks), run_isolated, on_result)


def _ray_executor(**options) -> Executor:

    return RayExecutor(**options)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": _ray_executor}


def make_executor(name: str, **options) -> Executor:

    if name not in EXECUTORS:
        raise NotFoundError(f"unknown executor '{name}'{closest(name, EXECUTORS)}")
    return EXECUTORS[name](**options)
