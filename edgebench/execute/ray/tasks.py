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
from edgebench.measure.identity import label_with_identity
from edgebench.measure.worker import MeasureTask, run_isolated
from edgebench.models.artifact import Artifact

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
    (same machine as the driver, or a shared filesystem). With the device's profile, the row is
    labelled as measured on that device only when this node recognises itself as it (its `detect`
    rule); otherwise as measured on what the node is, with a warning."""
    task = MeasureTask.from_dict(task_dict)
    facts = node_facts()
    # Ray sets OMP_NUM_THREADS=1 in its workers; the measurement process must start as it would
    # locally (each runner sets its threads from the profile), not inherit that.
    os.environ.pop("OMP_NUM_THREADS", None)
    with tempfile.TemporaryDirectory(prefix="edgebench-ray-") as tmp:
        if artifact is not None:
            task = dataclasses.replace(task, artifact=str(_unpack(artifact, Path(tmp) / "artifact")))
        if eval_data is not None:
            # The eval set comes first in its bundle; the FP32 reference outputs, if any, beside it.
            task = dataclasses.replace(task, eval_data=str(_unpack(eval_data, Path(tmp) / "data")))
            if task.reference:
                task = dataclasses.replace(task, reference=str(Path(tmp) / "data" / Path(task.reference).name))
        result = run_isolated(task)
    node = f"ray node {facts['hostname']} ({facts['ip']})"
    result = dataclasses.replace(result, node_id=facts["node_id"], extra=dict(result.extra, ray_node=facts),
                                 measured_on=f"{task.measured_on}; {node}")
    # A node that only advertises the device is recorded as what it really is, with a warning.
    return label_with_identity(result, profile, where=node, note=node)


def pack(path: str | Path) -> Bundle:
    """The file a runner loads plus the files it needs beside it (an IR's .bin, ONNX external data)."""
    return Artifact(Path(path)).contents()


def _unpack(bundle: Bundle, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in bundle.items():
        (folder / Path(name).name).write_bytes(data)  # names are flat; never let one escape the folder
    return folder / Path(next(iter(bundle))).name
