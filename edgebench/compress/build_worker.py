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
import pickle
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


class BuildWorker:
    """Builds recipes one after another in one worker process, each pass given `limit_s` seconds.
    The worker is started on the first build that needs one and kept for the next: its interpreter
    start (importing torch: ~4 s here) is paid once per run, not once per recipe, and its builder
    keeps the candidates it built, so recipes that share a prefix (prune50, prune50-ptq) build it
    once, as an in-process build does. A worker that overran or died is stopped; the next recipe
    starts a fresh one. Use as a context manager: leaving it stops the worker."""

    def __init__(self, builder: CandidateBuilder, limit_s: float, progress: Optional[Progress] = None,
                 note: Callable[[str], None] = lambda text: None):
        self.builder, self.limit_s, self.progress, self.note = builder, limit_s, progress, note
        self._worker: Any = None
        self._conn: Any = None
        self._in_process = False  # the job could not be handed to a worker: build here, without the limit

    def __enter__(self) -> BuildWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def build(self, recipe_name: str, steps: list[dict]) -> tuple[Optional[CandidateInfo], Optional[str]]:
        """`builder.build(recipe_name, steps)` in the worker. Raises what the build raised
        (EdgebenchError subclasses as they were), BuildTimedOut when a pass overran,
        BuildWorkerFailed when the worker died or hit a bug."""
        stored = self.builder.store.load_candidate(self.builder.final_id(recipe_name, steps))
        if stored is not None:
            return stored, None  # found without a worker: a resumed run, or built on Ray
        if self._in_process:
            return self.builder.build(recipe_name, steps)
        starting = self._worker is None
        if starting:
            try:
                self._start()
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                # A model source or dataset of the user's that does not pickle (a factory defined in
                # a function): the run still builds, in this process, and says what it gave up.
                self._in_process = True
                self.note(f"recipes are built in this process, without the --build-timeout limit: the build job "
                          f"cannot be handed to a worker process ({type(e).__name__}: {first_line(e)})")
                return self.builder.build(recipe_name, steps)
        self._conn.send((recipe_name, steps))
        worker = self._worker

        def exit_code() -> Optional[int]:
            worker.join(5)
            return worker.exitcode

        try:
            return follow(self._conn, self.limit_s, self.progress, exit_code,
                          phase="the build worker's start" if starting else "the build's start")
        except (BuildTimedOut, BuildWorkerFailed) as e:
            if isinstance(e, BuildTimedOut):
                worker.kill()  # still inside the pass: no point asking it to stop and waiting
            self.close()  # killed or dead: the next recipe gets a fresh interpreter
            raise

    def _start(self) -> None:
        b = self.builder
        job = BuildJob(b.store.root, b.dataset, b.source, b.baseline, b.train_epochs, b.seed, b.budget,
                       b.calibration, b.device)
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        worker = context.Process(target=_work, args=(job, theirs), daemon=True, name="edgebench-build")
        try:
            worker.start()  # pickles the job: raises here when it cannot
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()  # the worker holds the only other end: its exit is an EOF here
        self._conn, self._worker = mine, worker

    def close(self) -> None:
        if self._worker is None:
            return
        worker, conn = self._worker, self._conn
        self._worker = self._conn = None
        try:
            conn.send(None)  # a worker waiting for its next recipe exits by itself
        except OSError:
            pass  # it is already gone
        conn.close()
        worker.join(5)
        if worker.is_alive():
            worker.kill()
            worker.join()


def follow(receiver, limit_s: float, progress: Optional[Progress] = None,
           exit_code: Callable[[], Optional[int]] = lambda: None,
           phase: str = "the build worker's start") -> tuple[Optional[CandidateInfo], Optional[str]]:
    """Read a build worker's messages until its answer, giving each phase (the start, each pass,
    the export) `limit_s` seconds; `exit_code()` says how a worker that hung up without answering ended."""
    deadline = time.monotonic() + limit_s
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


def _work(job: BuildJob, conn) -> None:
    """The worker: one builder for the run, then recipes as they come, until told to stop (None)."""
    die_with_parent()
    store = RunStore(job.root)  # the parent holds the run folder's lock; the worker only adds candidates
    builder = CandidateBuilder(store, job.dataset, job.source, job.baseline, job.train_epochs, job.seed,
                               progress=lambda label, done, total: conn.send(("progress", label, done, total)),
                               budget=job.budget, calibration=job.calibration, device=job.device)
    while True:
        try:
            order = conn.recv()
        except EOFError:
            return  # the parent is gone or stopped us
        if order is None:
            return
        recipe_name, steps = order
        try:
            info, reason = builder.build(recipe_name, steps, on_pass=lambda name: conn.send(("pass", name)))
            conn.send(("result", info.to_dict() if info else None, reason))
        except EdgebenchError as e:
            conn.send(("raised", e))
        except Exception as e:  # noqa: BLE001 - the worker's boundary: the parent records it as this recipe's failure
            conn.send(("crashed", f"{type(e).__name__}: {first_line(e)}"))
