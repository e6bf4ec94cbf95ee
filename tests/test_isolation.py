"""A runtime that segfaults, hangs or raises becomes a recorded failure; the run goes on."""
import os
import signal
from pathlib import Path

import pytest

from edgebench.measure.timing import TimingConfig

PLUGIN_DIR = str(Path(__file__).parent / "plugins")


@pytest.fixture
def faulty_plugins(monkeypatch):
    monkeypatch.setenv("EDGEBENCH_PLUGINS", "faulty_runtimes")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [PLUGIN_DIR, os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(PLUGIN_DIR)
    import edgebench.core.registry as registry

    monkeypatch.setattr(registry, "_env_plugins_imported", False)
    from edgebench.backends import BACKENDS

    monkeypatch.setattr(BACKENDS, "_plugins_loaded", False)
    import faulty_runtimes  # noqa: F401  (registers in this process too)
    yield
    for name in ("crashy", "hangy", "leaky"):
        BACKENDS._items.pop(name, None)
    import edgebench.backends as backends

    backends._availability_cache.clear()


def test_crash_hang_and_error_are_recorded_and_run_completes(faulty_plugins, tmp_path):
    from edgebench.compare import CompareOptions, compare

    opts = CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=1, runs_dir=tmp_path,
                          recipes=["baseline"], runtimes=["onnxruntime", "crashy", "hangy", "leaky"],
                          # The hang costs the whole timeout; a working worker needs about 1.5 s (loaded machine).
                          measure_timeout_s=8, layer_profile=False,
                          timing=TimingConfig(time_budget_s=0.2, min_iterations=10, warmup_iterations=2))
    result = compare(opts)
    by_backend = {m.backend: m for m in result.measurements}
    assert by_backend["onnxruntime"].ok, by_backend["onnxruntime"].error
    crash = by_backend["crashy"]
    assert crash.status == "failed" and crash.exit_signal == signal.SIGSEGV and "SIGSEGV" in crash.error
    hang = by_backend["hangy"]
    assert hang.status == "failed" and "timed out" in hang.error
    err = by_backend["leaky"]
    assert err.status == "failed" and "MemoryError" in err.error
    html = (result.run_dir / "report.html").read_text()
    assert "SIGSEGV" in html  # failures are shown, not hidden
