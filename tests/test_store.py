import json
import multiprocessing

import pytest

from edgebench.core.errors import StoreError
from edgebench.core.records import Measurement
from edgebench.core.store import RunStore

LATENCY = {"median_ms": 1.0, "mean_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0,
           "ci_low_ms": 1.0, "ci_high_ms": 1.0, "confidence": 0.95, "iterations": 10, "warmup_iterations": 2,
           "total_s": 0.01, "stop_reason": "ci-reached"}


def _m(key, status="ok"):
    return Measurement(key=key, candidate="c", backend="onnxruntime", processor="cpu", precision="fp32",
                       device="host", source="measured", status=status, latency=dict(LATENCY))


def test_roundtrip_and_latest_wins(tmp_path):
    store = RunStore(tmp_path)
    store.append(_m("a", "failed"))
    store.append(_m("a"))
    store.append(_m("b"))
    got = {m.key: m for m in store.measurements()}
    assert got["a"].status == "ok" and set(got) == {"a", "b"}
    assert Measurement.from_dict(json.loads(json.dumps(got["b"].to_dict()))) == got["b"]


def test_torn_line_is_ignored_and_sealed(tmp_path):
    store = RunStore(tmp_path)
    store.append(_m("a"))
    with open(store.measurements_path, "ab") as f:
        f.write(b'{"key": "half-writ')  # what a kill mid-write leaves
    assert [m.key for m in store.measurements()] == ["a"]
    store.append(_m("b"))
    assert {m.key for m in store.measurements()} == {"a", "b"}


def _hold_lock(path, ready, release):
    with RunStore(path):
        ready.set()
        release.wait(10)


def test_second_run_on_same_folder_is_refused(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StoreError, match="in use") as info:
            RunStore(tmp_path).lock()
        assert info.value.exit_code == 9  # its own code: not the 8 of a full disk
    finally:
        release.set()
        p.join(10)


def test_disk_full_is_a_store_error(tmp_path):
    store = RunStore(tmp_path)
    (tmp_path / "measurements.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(StoreError, match="disk full") as info:
        store.append(_m("a"))
    assert info.value.exit_code == 8
