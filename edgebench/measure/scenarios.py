"""MLPerf LoadGen's scenarios as measurement modes, and batch size as a measured dimension.

- single-stream: one query of one batch at a time, sequentially (today's timing loop); MLPerf
  reports its p90 latency. With `--batch-sizes 1,8` each batch size is its own row.
- multi-stream: queries of 8 samples (one batch of 8), sequentially; MLPerf reports the p99
  latency per query. A model whose batch is fixed at 1 serves each query as 8 batch-1 requests in
  flight where the runtime has a throughput mode (MLPerf lets a query's samples be issued apart),
  and declines with the reason where it has none.
- offline: every sample available at once: several requests in flight in the runtime's own idiom
  (measure/throughput.py); the figure is samples per second.

Every row keeps its scenario and batch size in its key, so rows of different scenarios or
batches are never compared with each other by accident.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.core.errors import IncompatibleError, UsageError
from edgebench.core.records import SCENARIOS
from edgebench.models.onnx_io import declared_inputs

MULTI_STREAM_SAMPLES = 8  # MLPerf's MultiStream query size
MAX_BATCH = 4096


@dataclass(frozen=True)
class Scenario:
    name: str
    statistic: str  # the figure MLPerf reports for it: a LatencyStats field, or "samples_per_s"
    statistic_label: str
    throughput: bool = False  # requests in flight rather than one at a time
    batch: Optional[int] = None  # a fixed query size; None: each of --batch-sizes


SCENARIO = {
    "single-stream": Scenario("single-stream", "p90_ms", "p90 latency"),
    "multi-stream": Scenario("multi-stream", "p99_ms", f"p99 latency per {MULTI_STREAM_SAMPLES}-sample query",
                             batch=MULTI_STREAM_SAMPLES),
    "offline": Scenario("offline", "samples_per_s", "samples per second", throughput=True),
}
assert tuple(SCENARIO) == SCENARIOS


def parse_scenarios(values: Optional[list[str]]) -> list[str]:
    """`--scenario` values (repeatable, each possibly a comma list), in order, without repeats."""
    out: list[str] = []
    for value in values or ["single-stream"]:
        for name in (v.strip().lower().replace("_", "-") for v in value.split(",")):
            aliases = {"singlestream": "single-stream", "multistream": "multi-stream"}
            name = aliases.get(name, name)
            if name not in SCENARIO:
                raise UsageError(f"--scenario: '{name}' is not one of {', '.join(SCENARIO)}")
            if name not in out:
                out.append(name)
    return out


def parse_batch_sizes(value: Optional[str]) -> list[int]:
    """`--batch-sizes 1,8` as a list of positive ints, in order, without repeats."""
    if value is None or not str(value).strip():
        return [1]
    out: list[int] = []
    for part in str(value).split(","):
        try:
            size = int(part.strip())
        except ValueError:
            raise UsageError(f"--batch-sizes: '{part.strip()}' is not a whole number (e.g. --batch-sizes 1,8)") from None
        if not 1 <= size <= MAX_BATCH:
            raise UsageError(f"--batch-sizes: {size} is not a batch size (1 to {MAX_BATCH})")
        if size not in out:
            out.append(size)
    return out


def planned_batches(scenario: str, batch_sizes: list[int]) -> list[int]:
    fixed = SCENARIO[scenario].batch
    return [fixed] if fixed else list(batch_sizes)


def batch_decline(batch: int, input_shapes: dict[str, list], onnx_path: Optional[Path]) -> Optional[str]:
    """Why a candidate cannot be measured at `batch` (None when it can): the shape set already
    fixes a batch other than 1, or the model's ONNX declares a fixed leading dimension."""
    if batch == 1:
        return None
    for name, dims in input_shapes.items():
        if dims and int(dims[0]) != 1:
            return f"input '{name}' is measured at {'x'.join(map(str, dims))}, a batch of {dims[0]}; batch {batch} " \
                   "would stack on a dimension that is not the batch"
    if onnx_path is not None and onnx_path.is_file():
        for name, declared, _ in declared_inputs(onnx_path):
            if declared and isinstance(declared[0], int) and declared[0] > 0 and declared[0] != batch:
                return f"the model's input '{name}' has a fixed batch dimension of {declared[0]}; export it with a " \
                       f"dynamic batch to measure batch {batch}"
    return None


def serve_as_requests(scenario: str, input_shapes: dict[str, list], onnx_path: Optional[Path]) -> bool:
    """Whether a multi-stream query has to be served as MULTI_STREAM_SAMPLES batch-1 requests in
    flight: the shape set measures one sample at a time and the model's ONNX fixes its batch at 1."""
    if scenario != "multi-stream" or onnx_path is None or not onnx_path.is_file():
        return False
    if any(dims and int(dims[0]) != 1 for dims in input_shapes.values()):
        return False
    return any(declared and declared[0] == 1 for _, declared, _ in declared_inputs(onnx_path))


def batched_shapes(input_shapes: dict[str, list], batch: int) -> dict[str, list]:
    return {name: [batch, *dims[1:]] for name, dims in input_shapes.items()}


def batch_feed(feed_list: list[dict[str, np.ndarray]], batch: int) -> dict[str, np.ndarray]:
    """One feed of `batch` samples: the first stored feeds (cycled), stacked on the batch axis."""
    if batch == 1:
        return feed_list[0]
    picked = [feed_list[i % len(feed_list)] for i in range(batch)]
    return {name: np.ascontiguousarray(np.concatenate([f[name] for f in picked], axis=0)) for name in picked[0]}


def run_over_batched(runner, feed_list: list[dict[str, np.ndarray]], batch: int) -> list[np.ndarray]:
    """The runner's outputs over every stored feed, run `batch` at a time (the last batch padded
    with the first feeds, whose outputs are dropped), stacked per output as `run_over` stacks them."""
    per_output: list[list[np.ndarray]] = []
    for start in range(0, len(feed_list), batch):
        chunk = feed_list[start:start + batch]
        outputs = runner.infer(batch_feed(chunk + feed_list[:batch - len(chunk)], batch))
        for i, out in enumerate(outputs):
            out = np.asarray(out)
            if out.ndim == 0 or out.shape[0] != batch:
                raise IncompatibleError(f"output {i} has shape {list(out.shape)}: its first dimension is not the "
                                        f"batch of {batch}, so its samples cannot be scored apart")
            if i == len(per_output):
                per_output.append([])
            per_output[i].extend(out[j:j + 1] for j in range(len(chunk)))
    return [np.stack(o) for o in per_output]
