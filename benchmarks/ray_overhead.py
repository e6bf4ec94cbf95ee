"""What the Ray executor costs on one machine: a multi-candidate compare with the local executor
versus Ray, and the overhead Ray adds per task.

    python benchmarks/ray_overhead.py            # a few minutes; rerun on a quiet machine

Everything runs inside a private network namespace with only loopback (the script re-executes
itself under `unshare -n`), so no cluster traffic leaves the machine. The cluster is a head node
(this machine, for `--device host`) plus one node advertising `device:raspberry-pi-5` on the same
machine, so the second Ray run exercises the full remote path: placement by resource and
artifacts shipped through the object store.

Measured, each from a fresh run folder after a warm-up run that trains and caches the baseline:
  - local:        compare with the local executor
  - ray-host:     same compare, measurements as Ray tasks pinned to this node
  - local-again:  the local run once more, to show how much the machine's load drifted
  - ray-device:   compare for the device node, artifacts through the object store
and per task: a no-op Ray task (sequential round trip, and 200 in flight), and one measurement
run directly (worker.run_isolated) versus as a Ray task on the device node.
Writes benchmarks/results/ray_overhead.json and .md.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LOOPBACK = "127.0.0.1"


def reexec_in_private_netns() -> None:
    if os.environ.get("EDGEBENCH_IN_NETNS"):
        return
    cmd = f"ip link set lo up && exec {sys.executable} {' '.join(map(repr, sys.argv))}"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, EDGEBENCH_IN_NETNS="1", PYTHONPATH=path)
    sys.exit(subprocess.call(["unshare", "-n", "sh", "-c", cmd], env=env))


class StageClock:
    """A compare() reporter that records when each stage starts."""

    def __init__(self):
        self.t0, self.stages = time.perf_counter(), []

    def stage(self, name):
        self.stages.append((name.split(" ")[0], time.perf_counter() - self.t0))

    def progress(self, *a):
        pass

    def measured(self, m):
        pass

    def note(self, text):
        pass

    def span(self, start: str, end: str) -> float:
        times = dict(self.stages)
        return times[end] - times[start]


def timed_compare(runs: Path, name: str, device: str, executor: str, options: dict) -> dict:
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    opts = CompareOptions(model="tiny-cnn", device=device, data="digits", input_size=32, epochs=3, runs_dir=runs,
                          run_name=name, recipes=["baseline", "ptq-int8"],
                          timing=TimingConfig(time_budget_s=0.5, min_iterations=20, warmup_iterations=3),
                          executor=executor, executor_options=options)
    clock = StageClock()
    start = time.perf_counter()
    result = compare(opts, clock)
    wall = time.perf_counter() - start
    ok = [m for m in result.measurements if m.ok]
    return {"wall_s": round(wall, 2), "measure_stage_s": round(clock.span("measuring", "report"), 2),
            "measurements": len(result.measurements), "ok": len(ok), "candidates": len(result.candidates),
            "nodes": sorted({m.node_id[:12] for m in ok if m.node_id})}


def noop():
    return None


def task_overhead(ray, n: int = 200) -> dict:
    remote = ray.remote(noop).options(num_cpus=0)
    ray.get(remote.remote())  # a worker is up
    seq = []
    for _ in range(50):
        t = time.perf_counter()
        ray.get(remote.remote())
        seq.append(time.perf_counter() - t)
    t = time.perf_counter()
    ray.get([remote.remote() for _ in range(n)])
    pipelined = (time.perf_counter() - t) / n
    return {"noop_round_trip_ms_median": round(1e3 * statistics.median(seq), 3),
            "noop_round_trip_ms_p90": round(1e3 * sorted(seq)[int(0.9 * len(seq))], 3),
            f"noop_pipelined_ms_per_task_{n}_in_flight": round(1e3 * pipelined, 3)}


def measurement_overhead(ray, run_dir: Path, repeats: int = 5) -> dict:
    """One measurement of the baseline on ONNX Runtime, run directly and as a Ray task on the device node."""
    from edgebench.core.store import RunStore
    from edgebench.execute.ray.tasks import measure, pack
    from edgebench.measure.worker import MeasureTask, run_isolated

    info = RunStore(run_dir).load_candidate("baseline")
    task = MeasureTask(key="bench", candidate="baseline", backend="onnxruntime",
                       artifact=str(run_dir / info.artifacts["onnx"]), processor="cpu", precision="fp32",
                       device="raspberry-pi-5", measured_on="bench", eval_data=str(run_dir / "data" / "eval.npz"),
                       num_classes=10, timing={"time_budget_s": 0.2, "min_iterations": 20, "warmup_iterations": 3},
                       layer_profile=False)
    remote = ray.remote(measure).options(num_cpus=0, resources={"device:raspberry-pi-5": 1})
    direct, via_ray = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        run_isolated(task)
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        ray.get(remote.remote(task.to_dict(), ray.put(pack(Path(task.artifact))), ray.put(pack(Path(task.eval_data)))))
        via_ray.append(time.perf_counter() - t)
    d, r = statistics.median(direct), statistics.median(via_ray)
    return {"measurement_direct_s_median": round(d, 3), "measurement_via_ray_s_median": round(r, 3),
            "ray_overhead_per_measurement_s": round(r - d, 3), "repeats": repeats,
            "bundle_bytes": sum(len(b) for b in pack(Path(task.artifact)).values()) + Path(task.eval_data).stat().st_size}


def main() -> None:
    reexec_in_private_netns()
    guard = quiet.QuietGuard("--allow-busy" in sys.argv)
    os.environ.setdefault("EDGEBENCH_CACHE", "/tmp/ebcache-shared")
    import ray
    from ray.cluster_utils import Cluster

    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "load_avg_at_start": os.getloadavg()}, "ray": ray.__version__,
               "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()}
    runs = Path(tempfile.mkdtemp(prefix="ebbench-"))
    timed_compare(runs, "warmup", "host", "local", {})  # trains and caches the baseline for all below
    results["local"] = timed_compare(runs, "local", "host", "local", {})

    t = time.perf_counter()
    node = dict(node_ip_address=LOOPBACK, object_store_memory=100 * 1024 ** 2)
    # Ray writes <system temp>/ray/ray_current_cluster whatever temp_dir says ($RAY_TMPDIR, else
    # $TMPDIR, else /tmp), and fails where that folder does not exist yet (a fresh machine).
    system_temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    Path(system_temp, "ray").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="ebray"), **node))
    cluster.add_node(num_cpus=0, resources={"device:raspberry-pi-5": 1}, **node)
    cluster.wait_for_nodes()
    options = {"address": cluster.address, "node_ip_address": LOOPBACK}
    from edgebench.execute.ray.cluster import connect

    connect(**options)
    results["cluster_start_and_connect_s"] = round(time.perf_counter() - t, 2)
    results["ray_host"] = timed_compare(runs, "ray-host", "host", "ray", options)
    # Local again, after Ray: on a shared machine the load drifts, and this shows by how much.
    results["local_again"] = timed_compare(runs, "local-again", "host", "local", {})
    results["ray_device"] = timed_compare(runs, "ray-device", "rpi5", "ray", options)
    results["per_task"] = task_overhead(ray)
    results["per_task"].update(measurement_overhead(ray, runs / "local"))
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    ray.shutdown()
    cluster.shutdown()

    RESULTS.mkdir(parents=True, exist_ok=True)
    results["load"] = guard.check_writable()
    (RESULTS / "ray_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "ray_overhead.md").write_text(render(results))
    print(render(results))


def render(r: dict) -> str:
    rows = [("local executor", r["local"]), ("ray, pinned to this node (host)", r["ray_host"]),
            ("local executor again (drift check)", r["local_again"]),
            ("ray, device node (object store)", r["ray_device"])]
    lines = ["# Ray executor overhead on one machine", "",
             f"`python benchmarks/ray_overhead.py` at commit {r.get('commit')} on {r['machine']['cores']} cores, "
             f"Ray {r['ray']}; load average "
             f"{r['machine']['load_avg_at_start'][0]:.1f} at start, {r['machine']['load_avg_at_end'][0]:.1f} at end "
             "(other jobs share this machine: rerun on a quiet one before quoting).", "",
             "tiny-cnn, digits 32x32, recipes baseline + ptq-int8, 0.5 s timing budget per measurement.", "",
             "| run | wall s | measure stage s | measurements ok |", "|---|---|---|---|"]
    lines += [f"| {name} | {x['wall_s']} | {x['measure_stage_s']} | {x['ok']}/{x['measurements']} |" for name, x in rows]
    lines += ["", f"Cluster start (head + 1 device node) and connect: {r['cluster_start_and_connect_s']} s, "
              "not included above.", "", "Per task:", ""]
    lines += [f"- {k}: {v}" for k, v in r["per_task"].items()]
    lines += ["", "Ray runs include building the ptq-int8 candidate as a Ray task and, for the device, one probe "
              "task. Wall times of whole compares are dominated by machine load when other jobs share the cores; "
              "the per-task figures are the overhead Ray adds: a no-op round trip, and one measurement "
              "(ONNX Runtime, baseline) through a Ray task with its artifact and eval data shipped through the "
              "object store versus `worker.run_isolated` called directly."]
    lines += ["", "The host and device runs measure different device labels, so their measurement counts differ "
              "(the device profile lists fewer runtimes than this machine has)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
