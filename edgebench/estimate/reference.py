"""The operator costs of the anchors' reference models, shipped with the package.

An anchored estimate needs what each reference model (resnet50, mobilenet_v2, ...) asks of the
hardware at the size its anchor was published at. Exporting resnet50 during `compare` would cost
a minute and torchvision; so the costs are computed once by `python benchmarks/reference_ops.py`
(torchvision architectures with random weights: the costs depend on the graph, not the weights;
nothing is downloaded) and shipped as `reference_ops.json`, read here.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from edgebench.estimate.op_costs import GROUPS, graph_costs

# Reference models edgebench can build in code (torchvision, random weights: no download). The
# first five are what the device profiles' anchors publish; the rest stand for the held-out
# published figures of benchmarks/heldout_figures.yaml, which no profile cites yet.
REFERENCE_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
                    "squeezenet1_1", "mnasnet1_0", "shufflenet_v2_x1_0", "regnet_y_400mf", "vgg13", "vgg16",
                    "googlenet")
REFERENCE_OPS_FILE = Path(__file__).with_name("reference_ops.json")


def key(model: str, size: int) -> str:
    return f"{model}@{size}"


@cache
def reference_ops() -> dict[str, list]:
    """{"resnet50@224": [[group index, flops, elements], ...], ...}; empty when the file is absent."""
    if not REFERENCE_OPS_FILE.is_file():
        return {}
    data = json.loads(REFERENCE_OPS_FILE.read_text())
    if data.get("groups") != list(GROUPS):  # op groups changed since the file was written: unusable
        return {}
    return data["models"]


@cache
def winograd_ops() -> dict[str, frozenset]:
    """{"resnet50@224": positions in reference_ops()'s list of the Winograd-eligible convolutions
    (op_costs.winograd_eligible)}; empty when the file predates them."""
    if not reference_ops():
        return {}
    data = json.loads(REFERENCE_OPS_FILE.read_text())
    return {k: frozenset(v) for k, v in data.get("winograd_eligible", {}).items()}


def folded_at_batch_one(path: Path) -> Path:
    """The graph at `path` with its batch fixed to 1 and what is computed from constants and shapes
    folded (onnxscript's constant folding with ONNX shape inference), beside it. A reshape or chunk
    on a dynamic batch leaves its shape arithmetic in the exported graph (ShuffleNetV2's channel
    shuffle and split: Shape, Gather, Div, Mul, Slice with computed bounds); op_costs' shape
    inference cannot see through it, so the sizes after it are lost (ShuffleNetV2 x1.0 came out at
    0.019 of its 0.145 G multiply-accumulates) and each scalar op counts as an operator. Only the
    folding, none of the optimizer's rewrites (they drop the zero biases of random-weight convolutions,
    which op_costs counts as bytes): the anchors' five models come out exactly as exported."""
    import onnx
    from onnxscript import ir, optimizer

    proto = onnx.load(str(path))
    for value in list(proto.graph.input) + list(proto.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        batch.ClearField("dim_param")
        batch.dim_value = 1
    model = ir.serde.deserialize_model(proto)
    for _ in range(4):  # a fold can expose another (shape -> gather -> slice bounds)
        folded = optimizer.fold_constants(model, onnx_shape_inference=True)
        optimizer.remove_unused_nodes(model)
        if not folded.modified:
            break
    out = path.with_name(path.stem + "-folded.onnx")
    onnx.save(ir.serde.serialize_model(model), str(out))
    return out


def export_reference_ops(work: Path, wanted: list[tuple[str, int]]) -> dict:
    """Export each (model, size) to ONNX under `work` and return the file's content (slow: minutes)."""
    import numpy as np
    import torch
    import torchvision

    from edgebench.models.export import export_onnx

    models, winograd = {}, {}
    for model, size in sorted(set(wanted)):
        path = Path(work) / f"{model}-{size}.onnx"
        if not path.is_file():
            torch.manual_seed(0)
            module = getattr(torchvision.models, model)(weights=None).eval()
            x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
            export_onnx(module, path, x, rtol=1e-2, atol=1e-3)
        costs = graph_costs(folded_at_batch_one(path))
        models[key(model, size)] = [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in costs]
        winograd[key(model, size)] = [i for i, op in enumerate(costs) if op.winograd]
    return {"groups": list(GROUPS), "generated_by": "python benchmarks/reference_ops.py",
            "torch": torch.__version__, "torchvision": torchvision.__version__, "winograd_eligible": winograd,
            "models": models}
