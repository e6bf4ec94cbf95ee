"""Ray executor scenarios on a local multi-node cluster. Not collected on its own: test_ray.py runs
this file inside a private network namespace that has only loopback, so no cluster traffic can
leave the machine (Ray would otherwise advertise the external interface).

One cluster for the module, one run folder shared by the scenarios (candidates are built once):

    head     CPU 1, device:lab-fpga (a device with no profile)
    node A   device:jetson-orin-nano
    node B1  device:rpi5 (an alias of raspberry-pi-5)
    node B2  device:rpi5
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

if not os.environ.get("EDGEBENCH_IN_NETNS"):
    pytest.skip("run through test_ray.py, inside a loopback-only network namespace", allow_module_level=True)

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from edgebench.compare import CompareOptions, compare  # noqa: E402
from edgebench.core.store import read_jsonl  # noqa: E402
from edgebench.measure.timing import TimingConfig  # noqa: E402

LOOPBACK = "127.0.0.1"
NODE = dict(node_ip_address=LOOPBACK, object_store_memory=80 * 1024 ** 2)


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="ebray", dir="/tmp")  # short: Ray's socket paths are length-limited
    # Ray writes <system temp>/ray/ray_current_cluster whatever temp_dir says ($RAY_TMPDIR, else
    # $TMPDIR, else /tmp), and fails where that folder does not exist yet (a fresh machine).
    system_temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    Path(system_temp, "ray").mkdir(parents=True, exist_ok=True)
    c = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, resources={"device:lab-fpga": 1}, temp_dir=temp, **NODE,
        _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 3}))
    nodes = {"A": c.add_node(num_cpus=0, resources={"device:jetson-orin-nano": 1}, **NODE),
             "B1": c.add_node(num_cpus=0, resources={"device:rpi5": 1}, **NODE),
             "B2": c.add_node(num_cpus=0, resources={"device:rpi5": 1}, **NODE)}
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def run(cluster, device: str, runs_dir: Path, runtime: str = "onnxruntime"):
    c, _ = cluster
    opts = CompareOptions(model="tiny-cnn", device=device, data="digits", input_size=32, epochs=3, runs_dir=runs_dir,
                          run_name="cluster-run", recipes=["baseline", "ptq-int8"], runtimes=[runtime],
                          timing=TimingConfig(time_budget_s=1.0, min_iterations=20, warmup_iterations=3, target_ci=1e-9),
                          executor="ray", executor_options={"address": c.address, "node_ip_address": LOOPBACK,
                                                            "device_grace_s": 2.0})
    return compare(opts)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def node_running_a_measurement(nodes: dict):
    """The node (name, Node) whose raylet has a measurement worker process under it, if any."""
    raylets = {name: n.all_processes["raylet"][0].process.pid for name, n in nodes.items()
               if n.all_processes.get("raylet")}
    for proc in psutil.process_iter(["cmdline"]):
        if "edgebench.measure.worker" not in " ".join(proc.info["cmdline"] or []):
            continue
        try:
            ancestors = {p.pid for p in proc.parents()}
        except psutil.NoSuchProcess:
            continue
        for name, pid in raylets.items():
            if pid in ancestors:
                return name, nodes[name]
    return None


def kill_node_when(cluster, candidates: dict, ready=lambda: True, timeout_s=120.0) -> dict:
    """In a thread: once `ready()` and one of `candidates` is measuring, kill that node abruptly."""
    c, _ = cluster
    killed: dict = {}

    def watch():
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            found = ready() and node_running_a_measurement(candidates)
            if found:
                killed["name"], killed["node_id"] = found[0], found[1].node_id
                c.remove_node(found[1], allow_graceful=False)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    killed["thread"] = thread
    return killed


def lines(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "measurements.jsonl")


def test_cluster_devices_are_listed(cluster):
    from edgebench.execute.ray.cluster import cluster_devices, connect

    c, nodes = cluster
    found = {d.resource: d for d in cluster_devices(connect(c.address, node_ip_address=LOOPBACK))}
    assert set(found) == {"device:lab-fpga", "device:jetson-orin-nano", "device:rpi5"}
    assert found["device:rpi5"].profile == "raspberry-pi-5" and found["device:lab-fpga"].profile is None
    assert found["device:jetson-orin-nano"].node_id == nodes["A"].node_id
    proc = subprocess.run([sys.executable, "-m", "edgebench.cli", "devices", "--ray-address", c.address],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="250"))
    assert proc.returncode == 0, proc.stderr
    for needle in ("device:jetson-orin-nano", "raspberry-pi-5", nodes["B2"].node_id[:12], "lab-fpga"):
        assert needle in proc.stdout, proc.stdout


def test_each_device_is_measured_on_its_own_node(cluster, runs_dir):
    _, nodes = cluster
    result = run(cluster, "jetson", runs_dir)
    # Rows the plan could not run (the Jetson's GPU runtimes, absent on these nodes) are 'unavailable'.
    measured = [m for m in result.measurements if "|jetson-orin-nano|" in m.key and m.status != "unavailable"]
    assert len(measured) == 2 and all(m.ok for m in measured), [m.error for m in measured]
    for m in measured:
        assert m.node_id == nodes["A"].node_id and m.source == "measured"
        assert m.accuracy["total"] == 360 and m.top1 > 0.3  # 3x chance; 3-epoch INT8 lands near 0.5
    ptq = next(c for c in result.candidates if c.name == "ptq-int8")  # built by a Ray task on the CPU node
    assert f"built on ray node {cluster[0].head_node.node_id}" in ptq.notes
    assert {"onnx", "openvino"} <= set(ptq.artifacts) and all((result.run_dir / p).is_file() for p in ptq.artifacts.values())


def test_a_node_that_only_advertises_a_jetson_is_labelled_as_what_it_is(cluster, runs_dir):
    """Node A advertises device:jetson-orin-nano but is this x86 machine: its rows say so."""
    from edgebench.backends.host import local_device
    from edgebench.devices.host import cpu_model

    _, nodes = cluster
    result = run(cluster, "jetson", runs_dir)  # resumes: the rows stored by the test above
    here = local_device()
    assert here.name != "jetson-orin-nano"
    # Rows the plan could not run (the Jetson's GPU runtimes, absent on these nodes) are 'unavailable'.
    measured = [m for m in result.measurements if "|jetson-orin-nano|" in m.key and m.status != "unavailable"]
    assert len(measured) == 2
    for m in measured:
        assert m.device == here.name and m.device != "jetson-orin-nano"
        assert m.measured_on.startswith(here.description) and cpu_model() in m.measured_on and "ray node" in m.measured_on
        assert m.extra["advertised_device"] == "jetson-orin-nano"
        assert "does not detect itself as one" in m.extra["identity_warning"]
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["figures_are_target"] is False and info["measured_on_device"] == here.name
    assert any("jetson-orin-nano" in w for w in info["identity_warnings"])
    assert "Where these figures come from" in (result.run_dir / "report.html").read_text()


def test_lost_node_is_retried_on_another_node_of_the_device(cluster, runs_dir):
    _, nodes = cluster
    killed = kill_node_when(cluster, {"B1": nodes["B1"], "B2": nodes["B2"]})
    result = run(cluster, "rpi5", runs_dir)
    killed["thread"].join(timeout=5)
    assert killed.get("name"), "no rpi5 measurement was seen running"
    survivor = nodes["B2" if killed["name"] == "B1" else "B1"].node_id
    measured = [m for m in result.measurements if m.extra.get("advertised_device") == "raspberry-pi-5"]
    assert len(measured) == 2 and all(m.ok for m in measured), [m.error for m in measured]
    assert {m.node_id for m in measured} == {survivor}  # the killed node's work was redone there


def test_lost_device_is_recorded_failed_and_nothing_stored_is_lost(cluster, runs_dir):
    """The last rpi5 node dies after one OpenVINO measurement is stored, with the next in flight."""
    c, nodes = cluster
    alive = {name: n for name, n in nodes.items() if name.startswith("B") and n in c.worker_nodes}
    assert len(alive) == 1
    run_dir = runs_dir / "cluster-run"
    stored_before = (run_dir / "measurements.jsonl").read_bytes()
    first_ov = lambda: any(r["backend"] == "openvino" for r in lines(run_dir))  # noqa: E731
    killed = kill_node_when(cluster, alive, ready=first_ov)
    result = run(cluster, "rpi5", runs_dir, runtime="openvino")
    killed["thread"].join(timeout=5)
    assert killed.get("name") in alive, "the rpi5 node was not killed mid-run"
    ov = {m.key: m for m in result.measurements if m.backend == "openvino"}
    assert len(ov) == 2
    assert sorted(m.status for m in ov.values()) == ["failed", "ok"]
    lost = next(m for m in ov.values() if not m.ok)
    assert "device:rpi5" in lost.error and "left in the cluster" in lost.error
    assert (run_dir / "measurements.jsonl").read_bytes().startswith(stored_before)
    assert (run_dir / "report.html").is_file()  # the run completed


def test_every_measurement_ran_once_on_a_node_that_advertises_its_device(cluster, runs_dir):
    _, nodes = cluster
    advertised = {"jetson-orin-nano": {nodes["A"].node_id}, "raspberry-pi-5": {nodes["B1"].node_id, nodes["B2"].node_id}}
    rows = [r for r in lines(runs_dir / "cluster-run") if r["status"] != "unavailable"]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 6  # nothing measured twice, nothing stored twice
    for r in rows:
        if r["status"] == "ok":
            assert r["node_id"] in advertised[r["extra"]["advertised_device"]], r
