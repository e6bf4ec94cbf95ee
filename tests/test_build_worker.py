"""Recipes built in a worker process, each pass under a time limit (compress/build_worker.py)."""
import multiprocessing
import threading
import time

import pytest

from edgebench.compress.build_worker import BuildTimedOut, BuildWorkerFailed, follow


def _feed(messages, pause_s):
    """A pipe whose far end sends `messages` `pause_s` apart from a thread, then stays open."""
    receiver, sender = multiprocessing.Pipe(duplex=False)

    def send():
        for message in messages:
            time.sleep(pause_s)
            sender.send(message)

    threading.Thread(target=send, daemon=True).start()
    return receiver, sender


def test_each_pass_gets_the_limit_afresh():
    # Five phases of 0.4 s each: 2 s in all, over the limit of 1 s, but no phase alone is.
    receiver, _ = _feed([("pass", "prune"), ("progress", "prune", 1, 2), ("pass", "ptq"), ("pass", "export"),
                         ("result", None, "declined")], 0.4)
    seen = []
    assert follow(receiver, 1.0, lambda *a: seen.append(a)) == (None, "declined")
    assert seen == [("prune", 1, 2)]


def test_a_pass_past_the_limit_is_named():
    receiver, _sender = _feed([("pass", "prune")], 0.05)  # then silence: a pass that never ends
    started = time.monotonic()
    with pytest.raises(BuildTimedOut, match=r"pass 'prune' ran past the build time limit of 0.5 s"):
        follow(receiver, 0.5)
    assert time.monotonic() - started < 5


def test_a_worker_that_dies_is_a_failure_with_its_phase():
    receiver, sender = multiprocessing.Pipe(duplex=False)
    sender.send(("pass", "qat"))
    sender.close()
    with pytest.raises(BuildWorkerFailed, match=r"exited \(code -9\) during pass 'qat'"):
        follow(receiver, 5.0, exit_code=lambda: -9)


@pytest.fixture
def builder(tmp_path, digits):
    import torch

    from edgebench.compress import Candidate
    from edgebench.compress.builder import CandidateBuilder
    from edgebench.core.store import RunStore
    from edgebench.models.zoo import build_module, resolve_model

    torch.manual_seed(0)
    source = resolve_model("tiny-cnn")
    baseline = Candidate("baseline", module=build_module(source, 10).eval(),
                         lineage=({"pass": "baseline", "config": {"model": "tiny-cnn"}},))
    with RunStore(tmp_path / "run") as store:
        yield CandidateBuilder(store, digits, source, baseline, 1.0, 0)


PTQ = [{"pass": "ptq", "config": {"calibration_samples": 16, "runtimes": ["onnxruntime"]}}]


def test_a_recipe_built_in_a_worker_is_stored_and_an_overrun_loses_nothing(builder):
    from edgebench.compress.build_worker import BuildWorker

    with BuildWorker(builder, 300.0) as worker:
        info, reason = worker.build("ptq", PTQ)
        assert reason is None and info.precision == "int8"
        first = worker._worker.pid
        # The next recipe goes to the same worker: its interpreter start is paid once per run.
        again, _ = worker.build("ptq-16", [{"pass": "ptq", "config": {"calibration_samples": 12}}])
        assert again.precision == "int8" and worker._worker.pid == first
    assert worker._worker is None  # leaving the block stopped it
    stored = builder.store.load_candidate(info.id)
    assert stored.artifacts == info.artifacts and (builder.store.root / stored.artifacts["onnx"]).is_file()
    # Too short a limit for the pass (or what little of the worker's start comes after Process.start()
    # has handed it the job): that recipe fails, the stored one stays, and the next recipe gets a fresh worker.
    with BuildWorker(builder, 0.05) as worker:
        with pytest.raises(BuildTimedOut, match=r"(pass 'ptq'|the build worker's start) ran past the build time limit"):
            worker.build("ptq-again", [{"pass": "ptq", "config": {"calibration_samples": 8}}])
        assert worker._worker is None
        assert worker.build("ptq", PTQ) == (stored, None)  # stored: no worker, no limit to meet
    assert builder.store.load_candidate(info.id) == stored


def test_a_negative_build_timeout_is_a_usage_error(tmp_path):
    from edgebench.compare import CompareOptions, compare
    from edgebench.core.errors import UsageError

    with pytest.raises(UsageError, match="--build-timeout must be 0"):
        compare(CompareOptions(model="tiny-cnn", data="digits", build_timeout_s=-1, runs_dir=tmp_path))
    assert not any(tmp_path.iterdir())  # refused before any folder or training


def test_every_registered_model_source_pickles_for_the_worker():
    """The build job carries the model source to a spawned worker: a factory defined in a function
    (torchvision's were) failed every torchvision recipe with "Can't pickle local object"."""
    import pickle

    from edgebench.models.zoo import list_models, resolve_model

    names = list_models()  # registers torchvision's, which resolving a built-in name no longer does
    assert "resnet18" in names and "tiny-cnn" in names
    for name in names:
        source = resolve_model(name)
        assert pickle.loads(pickle.dumps(source)).spec == source.spec


def test_a_job_that_cannot_reach_a_worker_builds_in_this_process_and_says_so(builder):
    import dataclasses

    from edgebench.compress.build_worker import BuildWorker

    def local_factory(num_classes=10):  # a closure: it does not pickle
        raise AssertionError("not called: the baseline is already trained")

    builder.source = dataclasses.replace(builder.source, factory=local_factory)
    notes = []
    with BuildWorker(builder, 300.0, note=notes.append) as worker:
        info, reason = worker.build("ptq", PTQ)
        assert reason is None and info.precision == "int8" and worker._worker is None
        assert worker.build("ptq-12", [{"pass": "ptq", "config": {"calibration_samples": 12}}])[0] is not None
    assert len(notes) == 1 and "without the --build-timeout limit" in notes[0] and "pickle" in notes[0].lower()


def test_compare_builds_its_recipes_through_the_worker(tmp_path):
    """The suite builds in-process (conftest sets EDGEBENCH_BUILD_TIMEOUT=0); this compare asks for
    the worker: a recipe is built there and stored, and the run's rows come out as in-process."""
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig
    from edgebench.report.table import load_tables

    result = compare(CompareOptions(model="tiny-cnn", data="digits", input_size=32, epochs=0.1, runs_dir=tmp_path,
                                    recipes=["ptq-int8"], runtimes=["onnxruntime"], build_timeout_s=300.0,
                                    layer_profile=False, timing=TimingConfig(time_budget_s=0.2)))
    _, candidates, _, rows = load_tables(result.run_dir)
    assert "ptq-int8" in {c.name for c in candidates}
    assert ("ptq-int8", "ok") in {(r["name"], r["status"]) for r in rows}


def test_the_build_timeout_default_comes_from_the_environment(monkeypatch):
    from edgebench.compare import CompareOptions
    from edgebench.core.errors import UsageError

    monkeypatch.setenv("EDGEBENCH_BUILD_TIMEOUT", "45")
    assert CompareOptions(model="tiny-cnn").build_timeout_s == 45.0
    monkeypatch.setenv("EDGEBENCH_BUILD_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="EDGEBENCH_BUILD_TIMEOUT must be a number"):
        CompareOptions(model="tiny-cnn")
