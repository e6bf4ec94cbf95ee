import os
from pathlib import Path

import pytest

# Tests never touch the user's cache.
# Recipes build in this process: a build worker's interpreter start (~4 s) in every compare of the
# suite cost minutes. tests/test_build_worker.py runs the worker itself, and a compare through it.
os.environ.setdefault("EDGEBENCH_BUILD_TIMEOUT", "0")
os.environ.setdefault("EDGEBENCH_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "edgebench"))


@pytest.fixture(scope="session")
def digits():
    from edgebench.models.data import load_dataset

    return load_dataset("digits", input_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real compare run of a tiny CNN on real data, shared by tests that inspect its outputs.

    The default recipes but qat-int8, distill and distill-ptq (test_compress_passes checks those
    passes and their artifacts; here they cost two trainings and seven measurement processes).
    Every other kind stays: fp32, PTQ INT8, a structural change (prune50), a chain that shares its
    prefix (prune50-ptq), unstructured zeros (sparsify50) and passes that decline the model."""
    from edgebench.compare import CompareOptions, compare
    from edgebench.compress import DEFAULT_RECIPES
    from edgebench.measure.timing import TimingConfig

    runs = tmp_path_factory.mktemp("runs")
    recipes = [name for name in DEFAULT_RECIPES if name not in ("qat-int8", "distill", "distill-ptq")]
    opts = CompareOptions(model="tiny-cnn", device="jetson", data="digits", input_size=32, epochs=3, runs_dir=runs,
                          recipes=recipes,
                          timing=TimingConfig(time_budget_s=0.15, min_iterations=20, warmup_iterations=3))
    return opts, compare(opts)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, digits):
    """A trained tiny CNN exported to ONNX and OpenVINO IR, with its torch module. Trained as
    tiny_run's baseline is (3 epochs, seed 0, the same digits): the module cache trains it once."""
    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.models.export import export_onnx, onnx_to_openvino
    from edgebench.models.zoo import resolve_model

    folder = tmp_path_factory.mktemp("tiny")
    module = build_baseline(resolve_model("tiny-cnn"), digits, BaselineOptions(epochs=3, seed=0)).module
    onnx_path = export_onnx(module, folder / "model.onnx", digits.eval.x[:8])
    xml = onnx_to_openvino(onnx_path, folder / "openvino")
    import torch

    from edgebench.core.signing import sign

    torch.save(module, str(folder / "model.pt"))
    sign(folder / "model.pt")
    return {"module": module, "onnx": onnx_path, "openvino": xml, "torch": folder / "model.pt"}


@pytest.fixture(scope="session")
def host_run(tiny_run):
    """A second, smaller real run (same model, asked for this machine, ONNX Runtime only) to compare with."""
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    opts, _ = tiny_run
    other = CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=3,
                           runs_dir=opts.runs_dir, recipes=["baseline"], runtimes=["onnxruntime"],
                           timing=TimingConfig(time_budget_s=0.15, min_iterations=20, warmup_iterations=3))
    return compare(other)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """tests/helpers/small_run.py's run, uninterrupted, as it ended (its folder may change later:
    test_on_device merges other devices' rows into it)."""
    from edgebench.compare import compare
    from tests.helpers.small_run import small_run_options

    return compare(small_run_options(tmp_path_factory.mktemp("small"), "built"))


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for the timing loops: they read `timing.time.perf_counter_ns`, which returns
    `clock.ns`; scripted runners advance it by the latencies they stand for."""
    from types import SimpleNamespace

    from edgebench.measure import timing

    fake = SimpleNamespace(ns=0)
    fake.perf_counter_ns = lambda: fake.ns
    monkeypatch.setattr(timing, "time", fake)
    return fake
