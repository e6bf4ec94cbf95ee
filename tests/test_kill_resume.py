"""`compare` killed with SIGKILL at several points resumes to exactly the rows of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The run of conftest.small_run, whose uninterrupted rows are what a killed-and-resumed run must end with.
SCRIPT = """
import sys
from pathlib import Path
from edgebench.compare import compare
from tests.helpers.small_run import small_run_options
compare(small_run_options(Path(sys.argv[1]), "run"))
"""


def _start(runs: Path, cache: Path) -> subprocess.Popen:
    # A cache of its own: the first kill lands while the baseline really trains, not while it loads.
    env = dict(os.environ, EDGEBENCH_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(runs)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _lines(run: Path) -> list[dict]:
    path = run / "measurements.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def _finish(runs: Path, cache: Path) -> None:
    proc = _start(runs, cache)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]


def _ok_rows(run: Path) -> int:
    return sum(r["status"] == "ok" for r in _lines(run))


def _kill_when(runs: Path, cache: Path, ready, timeout: float = 300) -> tuple[int, int]:
    """Start a run, SIGKILL it once `ready(run)` holds; return its exit code and the measurement
    rows it had stored when it died. Fails if `ready` never held while the run was alive."""
    proc = _start(runs, cache)
    deadline = time.monotonic() + timeout
    while not ready(runs / "run") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    reached = ready(runs / "run")
    proc.send_signal(signal.SIGKILL)  # a no-op if it had already exited: the return code then says so
    _, err = proc.communicate()
    assert reached, f"kill point never reached (exit {proc.returncode}): {err.decode()[-2000:]}"
    return proc.returncode, _ok_rows(runs / "run")  # the process is dead: this is what the kill left


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume(small_run, tmp_path):
    cache = tmp_path / "cache"
    want = {m.key for m in small_run.measurements if m.status == "ok"}  # the same run, never interrupted
    assert len(want) >= 4

    runs = tmp_path / "interrupted"
    points = [
        lambda run: (run / "run.json").is_file(),  # while the baseline is being built
        lambda run: any((run / "candidates").glob("ptq-int8*/openvino*")),  # mid candidate build
        lambda run: len(_lines(run)) >= 2,  # between measurements
    ]
    for ready in points:
        code, stored = _kill_when(runs, cache, ready)
        # The kill landed on a live run, before it finished: not on a process that had already exited.
        assert code == -signal.SIGKILL, f"the run exited with {code} before it was killed"
        assert stored < len(want), f"{stored} of {len(want)} rows were stored before the kill: the run had finished"
        assert not (runs / "run" / "report.html").exists()  # the report is the last thing a run writes
    _finish(runs, cache)
    rows = _lines(runs / "run")
    ok = Counter(r["key"] for r in rows if r["status"] == "ok")
    assert set(ok) == want
    assert max(ok.values()) == 1  # nothing measured twice
    assert (runs / "run" / "report.html").is_file()
