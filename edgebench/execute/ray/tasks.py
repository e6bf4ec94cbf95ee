"""What runs on a cluster node: a probe of its runtimes, and one isolated measurement.

These are plain functions; ray_executor.py turns them into Ray tasks. A measurement still runs in
its own worker process (worker.run_isolated), so a runtime that crashes takes down only that
process and becomes a failed row, never the node's Ray worker.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import socket
import tempfile
from pathlib import Path
from typing import Optional

from edgebench.backends import BACKENDS, availability
from edgebench.core.records import Measurement
from edgebench.devices.host import cpu_model
from edgebench.measure.worker import MeasureTask, run_isolated

# Artifact bundles: {file name: bytes}, the first entry being the file the runner loads.
Bundle = dict


def node_facts() -> dict:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(), "hostname": socket.gethostname(),
            "cpu": cpu_model(), "machine": platform.machine()}


def probe() -> dict:
    """The runtimes this node has (what `edgebench backends` would list on it)."""
    return {"availability": {name: availability(name) for name, _ in BACKENDS.items()}, "node": node_facts()}


def measure(task_dict: dict, artifact: Optional[Bundle], eval_data: Optional[Bundle], profile=None) -> Measurement:
    """Run one measurement on this node. Bundles that are None mean the task's paths are valid here
    (same machine as the driver, or a shared filesystem). With the device's profile, the result
    also says whether this node recognises itself as that device (its `detect` rules)."""
    task = MeasureTask.from_dict(task_dict)
    facts = node_facts()
    # Ray sets OMP_NUM_THREADS=1 in its workers; the measurement process must start as it would
    # locally (each runner sets its threads from the profile), not inherit that.
    os.environ.pop("OMP_NUM_THREADS", None)
    with tempfile.TemporaryDirectory(prefix="edgebench-ray-") as tmp:
        if artifact is not None:
            task = dataclasses.replace(task, artifact=str(_unpack(artifact, Path(tmp) / "artifact")))
        if eval_data is not None:
            task = dataclasses.replace(task, eval_data=str(_unpack(eval_data, Path(tmp) / "data")))
        result = run_isolated(task)
    extra = dict(result.extra, ray_node=facts)
    if profile is not None:
        extra["node_matches_profile"] = profile.matches_this_machine()
    return dataclasses.replace(result, node_id=facts["node_id"], extra=extra,
                               measured_on=f"{task.measured_on}; ray node {facts['hostname']} ({facts['ip']})")


def pack(path: str | Path) -> Bundle:
    """The file a runner loads plus the files it needs beside it (an IR's .bin, ONNX external data)."""
    path = Path(path)
    files = [path]
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        files.append(path.with_suffix(".bin"))
    elif path.suffix == ".onnx":
        files += [path.parent / name for name in _onnx_external_files(path)]
    return {f.name: f.read_bytes() for f in files}


def _onnx_external_files(path: Path) -> list[str]:
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            names |= {e.value for e in tensor.external_data if e.key == "location"}
    return sorted(n for n in names if (path.parent / n).is_file())


def _unpack(bundle: Bundle, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in bundle.items():
        (folder / Path(name).name).write_bytes(data)  # names are flat; never let one escape the folder
    return folder / Path(next(iter(bundle))).name
