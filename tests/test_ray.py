"""The Ray executor on a real local multi-node cluster (tests/ray_scenarios.py), run in a private
network namespace with only loopback so that no cluster traffic leaves this machine; plus the
user errors that need no cluster."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _netns_usable() -> str:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a private network namespace here: {probe.stderr.strip()[:200]}"
    return ""


def test_ray_cluster_scenarios_in_a_loopback_only_namespace():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'edgebench[ray]'")
    why = _netns_usable()
    if why:
        pytest.skip(why)
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider tests/ray_scenarios.py"
    # 60 s on a quiet 2-core machine; over 900 s at load 5 (three other CPU-bound processes), where
    # Ray's own processes (a GCS, raylets, workers) get a fraction of a core each. The inner scenarios
    # wait for readiness; this limit only stops a hang.
    try:
        proc = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                              timeout=2400, env=dict(os.environ, EDGEBENCH_IN_NETNS="1"))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the Ray scenarios ran past {e.timeout:.0f} s; their output so far:\n{_text(e.stdout)}{_text(e.stderr)}")
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, tail
    assert re.search(r"\b6 passed", proc.stdout), tail


def _text(output) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def run_cli(*args, cwd=None):
    # PYTHONPATH: from another folder, `-m edgebench.cli` must still import this checkout's edgebench.
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env=env)


@pytest.mark.parametrize("args, code, needle", [
    (["devices", "--ray-address", "127.0.0.1:9"], 3, "no Ray cluster answers at '127.0.0.1:9'"),
    (["devices", "--ray-address", "nonsense"], 2, "must be HOST:PORT"),
    (["compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--ray-address", "127.0.0.1:9"], 3,
     "no Ray cluster answers"),
])
def test_cluster_user_errors_are_one_line(args, code, needle, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'edgebench[ray]'")
    proc = run_cli(*args, "--runs-dir", str(tmp_path), cwd=tmp_path) if args[0] == "compare" else run_cli(*args)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == code and len(lines) == 1 and needle in lines[0], proc.stderr


def test_unknown_executor_suggests_ray():
    from edgebench.core.errors import NotFoundError
    from edgebench.execute.local import make_executor

    with pytest.raises(NotFoundError, match="did you mean 'ray'"):
        make_executor("rai")
