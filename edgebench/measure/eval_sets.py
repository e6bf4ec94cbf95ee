"""The evaluation inputs a run stores, and the FP32 reference outputs on them.

One .npz per shape set: `in:NAME` holds that input's feeds stacked over samples ([samples,
*input shape]); `y` the labels where there are labels that fit (or the `targets` array of an
npz: source, for a user metric). The set is capped at
`max_samples` and `max_bytes` (a 640x640 detector input is 4.9 MB a sample: a cap in samples
alone would let a large input size fill the memory), and its size is reported. Feeds are drawn
from the source one at a time, so no more than the stored set is ever held.

`write_reference` runs the baseline's FP32 ONNX model on ONNX Runtime's CPU provider over the
stored inputs and keeps `out:I` per output: what every candidate's agreement is measured against.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Placement
from edgebench.backends.onnxruntime_runner import OnnxRuntimeRunner
from edgebench.core.atomic import atomic_path
from edgebench.core.errors import UsageError
from edgebench.models.input_data import Preprocess, feeds
from edgebench.models.inputs import InputSpec, samples_bytes

MAX_SAMPLES = 32
MAX_BYTES = 64 * 2 ** 20


def eval_capacity(specs: list[InputSpec], max_samples: int = MAX_SAMPLES, max_bytes: int = MAX_BYTES) -> int:
    return max(1, min(max_samples, max_bytes // max(1, samples_bytes(specs))))


def write_eval_set(path: Path, specs: list[InputSpec], data: str, preprocess: Preprocess = Preprocess(),
                   seed: int = 0, max_samples: int = MAX_SAMPLES, max_bytes: int = MAX_BYTES) -> dict:
    """Store up to the cap of feeds from `data`; returns {"samples", "bytes"}."""
    count = eval_capacity(specs, max_samples, max_bytes)
    stacks = {s.name: np.empty((count, *s.shape), s.dtype) for s in specs}
    n = 0
    for n, feed in enumerate(feeds(data, specs, count, preprocess, seed), start=1):
        for name, array in feed.items():
            stacks[name][n - 1] = array
    if n == 0:
        raise UsageError(f"data source '{data}' gave no samples")
    arrays = {f"in:{name}": a[:n] for name, a in stacks.items()}
    targets = _npz_targets(data)
    if targets is not None:
        arrays["y"] = targets[:n]
    if not path.is_file():
        with atomic_path(path, suffix=".npz") as scratch:
            np.savez(scratch, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return {"samples": n, "bytes": int(sum(a.nbytes for a in arrays.values()))}


def _npz_targets(data: str) -> Optional[np.ndarray]:
    """The `targets` array of an npz: data source (what a user metric scores against), if any."""
    if not data.startswith("npz:"):
        return None
    with np.load(Path(data.split(":", 1)[1]).expanduser()) as arrays:
        return arrays["targets"] if "targets" in arrays.files else None


def write_labelled_eval_set(path: Path, name: str, x: np.ndarray, y: np.ndarray) -> dict:
    """A dataset split for a classifier built for it: one-sample feeds under `name`, and labels."""
    if not path.is_file():
        with atomic_path(path, suffix=".npz") as scratch:
            np.savez(scratch, **{f"in:{name}": x[:, None], "y": y})  # type: ignore[arg-type]  # numpy stub: **kwds as bool
    return {"samples": len(y), "bytes": int(x.nbytes)}


def load_eval_set(path: Path) -> tuple[list[dict[str, np.ndarray]], Optional[np.ndarray]]:
    """The stored feeds (one dict per sample, in the stored input order) and labels (or None)."""
    data = np.load(path)
    names = [k[3:] for k in data.files if k.startswith("in:")]
    stacks = {name: data[f"in:{name}"] for name in names}
    count = min(len(a) for a in stacks.values())
    return ([{name: stacks[name][i] for name in names} for i in range(count)],
            data["y"] if "y" in data.files else None)


def run_over(runner, feed_list: list[dict]) -> list[np.ndarray]:
    """The runner's outputs over every feed, stacked per output."""
    per_output: list[list[np.ndarray]] = []
    for feed in feed_list:
        for i, out in enumerate(runner.infer(feed)):
            if i == len(per_output):
                per_output.append([])
            per_output[i].append(np.asarray(out))
    return [np.stack(o) for o in per_output]


def write_reference(onnx_path: Path, eval_path: Path, out_path: Path, threads: Optional[int] = None) -> Path:
    if out_path.is_file():
        return out_path
    feed_list, _ = load_eval_set(eval_path)
    runner = OnnxRuntimeRunner()
    runner.load(onnx_path, Placement("cpu", "fp32", threads))
    outputs = run_over(runner, feed_list)
    names = [o.name for o in runner.session.get_outputs()]
    runner.close()
    with atomic_path(out_path, suffix=".npz") as scratch:
        np.savez(scratch, names=np.array(names), **{f"out:{i}": o for i, o in enumerate(outputs)})  # type: ignore[arg-type]
    return out_path


def load_reference(path: Path) -> tuple[list[np.ndarray], list[str]]:
    data = np.load(path)
    count = sum(1 for k in data.files if k.startswith("out:"))
    return [data[f"out:{i}"] for i in range(count)], [str(n) for n in data["names"]]
