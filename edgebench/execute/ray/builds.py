"""Candidate builds (training, distillation, QAT, PTQ, exports) as Ray tasks on the cluster's CPU
workers, all recipes at once.

Each task rebuilds one recipe from the baseline in a scratch run folder on its node and sends the
finished candidate folder back as a tar archive, which is unpacked into the run folder here. The
pipeline's own build loop then finds every candidate already stored, exactly as on a resumed
run; a recipe whose remote build failed is simply built again locally by that loop, so its error
or skip reason is reported the usual way.
"""
from __future__ import annotations

import dataclasses
import io
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from edgebench.compress import instantiate
from edgebench.compress.builder import CandidateBuilder, candidate_id
from edgebench.core.records import CandidateInfo
from edgebench.core.signing import sign
from edgebench.core.store import RunStore


def build_on_node(dataset, source, baseline, epochs: float, seed: int, name: str, steps: list,
                  budget: float = 1.0, device=None) -> tuple[Optional[dict], Optional[str], Optional[bytes]]:
    """Runs on a worker: (candidate info, None, tar of its folder) or (None, skip reason, None)."""
    import ray

    with tempfile.TemporaryDirectory(prefix="edgebench-build-") as tmp:
        store = RunStore(Path(tmp))
        info, reason = CandidateBuilder(store, dataset, source, baseline, epochs, seed, budget=budget,
                                        device=device).build(name, steps)
        if info is None:
            return None, reason, None
        node = ray.get_runtime_context().get_node_id()
        info = dataclasses.replace(info, notes=tuple(info.notes) + (f"built on ray node {node}",))
        store.save_candidate(info)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(store.candidate_dir(info.id), arcname=f"candidates/{info.id}")
        return info.to_dict(), None, buffer.getvalue()


def unpack_candidate(store: RunStore, info: dict, archive: bytes) -> CandidateInfo:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(store.root, filter="data")  # refuses absolute paths, links out, devices
        else:  # Pythons before the extraction filters: plain files and folders under candidates/ only
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or parts[:1] != ("candidates",) \
                        or not (member.isfile() or member.isdir()):
                    raise ValueError(f"unexpected entry '{member.name}' in a candidate archive")
            tar.extractall(store.root)
    candidate = CandidateInfo.from_dict(info)
    module = store.root / candidate.artifacts.get("torch", "-")
    if module.is_file():
        sign(module)  # built by our own cluster's worker and received over Ray: sign it with this user's key
    return candidate


def prebuild(ray, builder: CandidateBuilder, recipes: list, reporter, num_cpus: float, max_retries: int) -> None:
    if not builder.source.is_torch:
        return  # an ONNX model's file lives here only; its few passes are cheap
    wanted = {}
    for name, steps in recipes:
        if not steps:
            continue  # the baseline is built before this, here
        cid = candidate_id(name, builder.baseline.lineage + tuple(p.step() for p in instantiate(steps)))
        if builder.store.load_candidate(cid) is None:
            wanted[name] = steps
    if not wanted:
        return
    reporter.stage(f"building {len(wanted)} candidate(s) on the Ray cluster")
    shared = [ray.put(builder.dataset), ray.put(builder.source), ray.put(builder.baseline)]
    remote = ray.remote(build_on_node).options(num_cpus=num_cpus, max_retries=max_retries)
    pending = {remote.remote(*shared, builder.train_epochs, builder.seed, name, steps, builder.budget,
                                   builder.device): name
               for name, steps in wanted.items()}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(ready[0])
        try:
            info, _, archive = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            first = str(getattr(e, "cause", None) or e).strip().splitlines()
            reporter.note(f"remote build of {name} failed ({first[-1][:200] if first else type(e).__name__}); "
                          f"building it here")
            continue
        if info is not None:
            unpack_candidate(builder.store, info, archive)
