"""Measurements as Ray tasks, placed on the nodes that advertise the device.

- A measurement for device D requests the custom resource `device:D` (capacity 1 per node), so
  Ray runs it on a node that offers D and never two at once on one node.
- Measurements for this machine (no node advertises the device) are pinned to the driver's node
  and submitted one at a time.
- Artifacts and eval data travel through Ray's object store (each once per run), unless the
  cluster shares a filesystem (`shared_fs=True`) or the task stays on the driver's node.
- Candidate builds run as Ray tasks on CPU workers, all recipes at once (ray_builds.py).
- Results come back as they finish and go straight to `on_result` (the run store appends them),
  so a node that is lost costs only its in-flight work: Ray retries it on another node offering
  the device (`max_retries`), and when none is left the measurement is recorded as failed.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any, Optional

from edgebench.backends import Availability, availability
from edgebench.core.errors import RuntimeUnavailableError
from edgebench.core.records import Measurement
from edgebench.execute.ray.builds import prebuild
from edgebench.execute.ray.cluster import cluster_devices, connect, device_resource
from edgebench.execute.ray.tasks import measure, pack, probe
from edgebench.measure.worker import MeasureTask, failed

OnResult = Callable[[Measurement], None]


class RayExecutor:
    name = "ray"

    def __init__(self, address: Optional[str] = None, node_ip_address: Optional[str] = None,
                 shared_fs: bool = False, max_retries: int = 2, device_grace_s: float = 30.0,
                 probe_timeout_s: float = 300.0, ship_code: bool = True, build_cpus: Optional[float] = 1.0):
        self.ray = connect(address, node_ip_address=node_ip_address, ship_code=ship_code)
        self.shared_fs, self.max_retries = shared_fs, max_retries
        self.device_grace_s, self.probe_timeout_s = device_grace_s, probe_timeout_s
        self.build_cpus = build_cpus  # CPUs each remote candidate build asks for; None: build here
        self._resource: dict[str, str] = {}  # profile name -> the resource its nodes advertise
        self._profiles: dict[str, object] = {}  # profile name -> DeviceProfile, for the nodes to check

    # planning ------------------------------------------------------------------------------
    def offers(self, profile) -> bool:
        """Whether a live node advertises `profile`; then its measurements run there."""
        resource = device_resource(self.ray, profile)
        if resource:
            self._resource[profile.name], self._profiles[profile.name] = resource, profile
        return resource is not None

    def availability_on(self, profile) -> Callable[[str], Availability]:
        """Which runtimes the device's nodes have, asked of one of them (nodes of a device are
        assumed to be installed alike; one that is not reports its measurements as failed)."""
        resource = self._resource.get(profile.name)
        if resource is None:
            return availability

        ref = self.ray.remote(probe).options(num_cpus=0, resources={resource: 1},
                                             max_retries=self.max_retries).remote()
        ready, _ = self.ray.wait([ref], timeout=self.probe_timeout_s)
        if not ready:
            self.ray.cancel(ref, force=True)
            raise RuntimeUnavailableError(f"no node offering '{resource}' answered within {self.probe_timeout_s:.0f} s")
        table = self.ray.get(ref)["availability"]
        return lambda name: table.get(name) or Availability(False, reason=f"not installed on the {resource} node")

    # building ------------------------------------------------------------------------------
    def prebuild(self, builder, recipes: list, reporter) -> None:
        """Build every recipe not yet stored as parallel Ray tasks on the cluster's CPU workers."""
        if self.build_cpus is None:
            return

        prebuild(self.ray, builder, recipes, reporter, self.build_cpus, self.max_retries)

    # measuring -----------------------------------------------------------------------------
    def run(self, tasks: Iterable[MeasureTask], on_result: OnResult) -> None:
        ray = self.ray

        remote_measure = ray.remote(measure)
        driver_node = ray.get_runtime_context().get_node_id()
        shipped: dict[str, object] = {}  # local path -> ObjectRef of its bundle, each put once

        def bundle(path: str, *with_it: Optional[str]):
            """One bundle of `path` and the files that travel with it (the eval set's reference outputs)."""
            key = "|".join([path, *[p for p in with_it if p]])
            if key not in shipped:
                contents = pack(path)
                for extra in with_it:
                    if extra:
                        contents.update(pack(extra))
                shipped[key] = ray.put(contents)
            return shipped[key]

        def submit(task: MeasureTask):
            resource = self._resource.get(task.device)
            options: dict[str, Any]
            args: tuple[Any, ...]
            if resource is None:  # this machine: pinned to the driver's node, paths valid as they are
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                options = {"scheduling_strategy": NodeAffinitySchedulingStrategy(driver_node, soft=False)}
                args = (None, None, None)
            else:
                options = {"resources": {resource: 1}}
                if not self.shared_fs:
                    # Only the candidate's artifact travels: its speedup is read from the two rows instead.
                    task = dataclasses.replace(task, pair=None)
                args = (None, None) if self.shared_fs else (bundle(task.artifact), bundle(task.eval_data, task.reference))
                args += (self._profiles.get(task.device),)
            return remote_measure.options(num_cpus=0, max_retries=self.max_retries, retry_exceptions=False,
                                          **options).remote(task.to_dict(), *args)

        tasks = list(tasks)
        local = [t for t in tasks if t.device not in self._resource]
        pending: dict = {submit(t): t for t in tasks if t.device in self._resource}
        local_ref = None
        missing_since: dict[str, float] = {}
        try:
            while pending or local:
                if local_ref is None and local:  # one at a time on this machine
                    task = local.pop(0)
                    local_ref = submit(task)
                    pending[local_ref] = task
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    if ref == local_ref:
                        local_ref = None
                    on_result(self._collect(ref, pending.pop(ref)))
                self._fail_abandoned(pending, missing_since, on_result)
        finally:  # interrupted (Ctrl-C, a full disk): leave no measurement running on the cluster
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best-effort cancel on the way out; the task may already be gone
                    pass

    def _fail_abandoned(self, pending: dict, missing_since: dict, on_result: OnResult) -> None:
        """Record as failed the queued work of a device that no live node offers any more (after
        a grace period, in case its node comes back), instead of waiting for it forever."""
        waiting = {self._resource[t.device] for t in pending.values() if t.device in self._resource}
        if not waiting:
            return
        offered = {d.resource for d in cluster_devices(self.ray)}
        now = time.monotonic()
        for resource in waiting:
            if resource in offered:
                missing_since.pop(resource, None)
                continue
            if now - missing_since.setdefault(resource, now) < self.device_grace_s:
                continue
            for ref, task in list(pending.items()):
                if self._resource.get(task.device) == resource:
                    try:
                        self.ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - already gone with its node; nothing left to stop
                        pass
                    del pending[ref]
                    on_result(failed(task, f"no node offering '{resource}' is left in the cluster "
                                           f"(waited {self.device_grace_s:.0f} s); rerun to measure it"))

    def _collect(self, ref, task: MeasureTask) -> Measurement:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return failed(task, f"no node offering '{self._resource.get(task.device)}' is left in the cluster")
        except ray.exceptions.RayTaskError as e:
            cause = str(e.cause if getattr(e, "cause", None) else e).strip().splitlines()
            return failed(task, f"ray task failed: {cause[-1][:300] if cause else type(e).__name__}")
        except ray.exceptions.RayError as e:
            first = str(e).strip().splitlines()
            return failed(task, f"lost the ray node after {self.max_retries} retries: "
                                f"{type(e).__name__}: {first[0][:200] if first else ''}")
