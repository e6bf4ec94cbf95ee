"""A recipe's build in a worker process, each of its passes under a time limit.

A pass that never finishes (Torch-Pruning on an architecture its dependency graph handles badly)
must not stall the whole run. The recipe is built in a fresh interpreter (spawned, as measurement
workers are, so no half-held lock of the parent's thread pools is inherited) that stores the
candidate in the run folder exactly as an in-process build does, and tells the parent as each pass
starts. A pass (or the worker's start, or the final export) that outruns the limit has its worker
killed: the recipe becomes a failed row with the reason, every candidate already stored stays, and
the run goes on.
"""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgebench.compress.builder import CandidateBuilder, first_line
from edgebench.core.errors import EdgebenchError
from edgebench.core.records import CandidateInfo
from edgebench.core.store import RunStore
from edgebench.measure.worker import die_with_parent

Progress = Callable[[str, int, int], None]


class BuildTimedOut(EdgebenchError):
    """A pass ran past the build time limit; its worker was stopped."""


class BuildWorkerFailed(EdgebenchError):
    """The build worker died (killed for memory, a crash in native code) or a pass raised a bug."""


@dataclass(frozen=True)
class BuildJob:
    """What the worker needs to rebuild the builder: everything but the parent's progress display."""
    root: Path
    dataset: Any
    source: Any
    baseline: Any
    train_epochs: float
    seed: int
    budget: float
    calibration: Any
    device: Any


def build_in_worker(builder: CandidateBuilder, recipe_name: str, steps: list[dict], limit_s: float,
                    progress: Optional[Progress] = None) -> tuple[Optional[CandidateInfo], Optional[str]]:
    """`builder.build(recipe_name, steps)` in a worker process, each pass given `limit_s` seconds.
    Raises what the build raised (EdgebenchError subclasses as they were), BuildTimedOut when a
    pass overran, BuildWorkerFailed when the worker died or hit a bug."""
    stored = builder.store.load_candidate(builder.final_id(recipe_name, steps))
    if stored is not None:
        return stored, None  # found without starting an interpreter: a resumed run, or built on Ray
    job = BuildJob(builder.store.root, builder.dataset, builder.source, builder.baseline, builder.train_epochs,
                   builder.seed, builder.budget, builder.calibration, builder.device)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_work, args=(job, recipe_name, steps, sender), daemon=True,
                             name=f"edgebench-build-{recipe_name}")
    worker.start()
    sender.close()  # the worker holds the only sending end: its exit is an EOF here
    try:
        def exit_code() -> Optional[int]:
            worker.join(5)
            return worker.exitcode

        return follow(receiver, limit_s, progress, exit_code)
    except BuildTimedOut:
        worker.kill()
        raise
    finally:
        receiver.close()
        worker.join(5)  # a worker that answered exits by itself
        if worker.is_alive():
            worker.kill()
            worker.join()


def follow(receiver, limit_s: float, progress: Optional[Progress] = None,
           exit_code: Callable[[], Optional[int]] = lambda: None) -> tuple[Optional[CandidateInfo], Optional[str]]:
    """Read a build worker's messages until its answer, giving each phase (the start, each pass,
    the export) `limit_s` seconds; `exit_code()` says how a worker that hung up without answering ended."""
    phase, deadline = "the build worker's start", time.monotonic() + limit_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not receiver.poll(remaining):
            raise BuildTimedOut(f"{phase} ran past the build time limit of {limit_s:g} s per pass "
                                f"(--build-timeout); its worker was stopped")
        try:
            message = receiver.recv()
        except EOFError:
            raise BuildWorkerFailed(f"the build worker exited (code {exit_code()}) during {phase}") from None
        kind = message[0]
        if kind == "pass":
            phase, deadline = f"pass '{message[1]}'", time.monotonic() + limit_s
        elif kind == "progress":
            if progress is not None:
                progress(*message[1:])
        elif kind == "result":
            return (CandidateInfo.from_dict(message[1]) if message[1] else None), message[2]
        elif kind == "raised":
            raise message[1]
        else:  # "crashed": a bug in a pass, by its type and first line
            raise BuildWorkerFailed(message[1])


def _work(job: BuildJob, recipe_name: str, steps: list[dict], sender) -> None:
    die_with_parent()
    store = RunStore(job.root)  # the parent holds the run folder's lock; the worker only adds its candidate
    builder = CandidateBuilder(store, job.dataset, job.source, job.baseline, job.train_epochs, job.seed,
                               progress=lambda label, done, total: sender.send(("progress", label, done, total)),
                               budget=job.budget, calibration=job.calibration, device=job.device)
    try:
        info, reason = builder.build(recipe_name, steps, on_pass=lambda name: sender.send(("pass", name)))
        sender.send(("result", info.to_dict() if info else None, reason))
    except EdgebenchError as e:
        sender.send(("raised", e))
    except Exception as e:  # noqa: BLE001 - the worker's boundary: the parent records it as this recipe's failure
        sender.send(("crashed", f"{type(e).__name__}: {first_line(e)}"))
    finally:
        sender.close()
