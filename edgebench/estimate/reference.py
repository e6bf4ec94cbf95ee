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

# Reference models edgebench can build in code (torchvision, random weights: no download): what the
# device profiles' anchors publish. The five first anchored every estimate the forms were chosen on;
# squeezenet1_1 to vgg16 came with the held-out figures adopted as anchors on 2026-11-30
# (benchmarks/heldout_figures.yaml); googlenet only approximates the published BVLC GoogLeNet, so
# its figures stayed out of the anchors.
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
        costs = graph_costs(path)  # folded at batch 1, as every graph op_costs reads
        models[key(model, size)] = [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in costs]
        winograd[key(model, size)] = [i for i, op in enumerate(costs) if op.winograd]
    return {"groups": list(GROUPS), "generated_by": "python benchmarks/reference_ops.py",
            "torch": torch.__version__, "torchvision": torchvision.__version__, "winograd_eligible": winograd,
            "models": models}
