"""Whether a rewrite can pay: a per-layer cost model in dense-MAC equivalents.

A rewrite that lowers MACs can still be slower: a depthwise convolution reaches a fraction of a
dense one's efficiency, each extra operator costs a dispatch, and the intermediate activation is
written and read again. The cost of a layer here is

    MACs x inefficiency(kind) + ELEMENT_COST x activation elements moved + OP_COST

with constants for a CPU runtime at FP32 (the estimator's priors, edgebench/estimate/roofline.py,
in MAC units: a dense convolution reaches ~4x a depthwise one's MAC rate; moving one FP32 element
costs about as long as 20 MACs at a CPU's compute/bandwidth ratio; a dispatch ~250k MACs, a few
microseconds). The rewrite passes rewrite a layer only where the model says it saves, and decline
when the whole model would not get measurably cheaper. It is a screen, not a promise: the
measured latency in the report is the answer.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgebench.compress.probe import probe

DEPTHWISE_INEFFICIENCY = 4.0
ELEMENT_COST = 20.0
OP_COST = 2.5e5


@dataclass(frozen=True)
class Shapes:
    """A layer's input and output activation sizes at the deployed input size (batch 1)."""
    in_shape: tuple
    in_elements: int
    out_elements: int
    out_positions: int  # output spatial positions (1 for a Linear)


def layer_shapes(model, sample) -> dict:
    """Layer name -> Shapes for every Conv2d and Linear, from one forward pass."""
    from torch import nn

    shapes = {}

    def watch(name):
        def hook(_m, inputs, output):
            x = inputs[0]
            positions = output.shape[-1] * output.shape[-2] if output.ndim == 4 else 1
            shapes[name] = Shapes(tuple(x[:1].shape), x[:1].numel(), output[:1].numel(), int(positions))
        return hook

    probe(model, sample[:1], [(m, watch(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    return shapes


def conv_cost(cin: int, cout: int, kernel: int, groups: int, positions: int, in_elements: int) -> float:
    macs = cout * (cin // groups) * kernel * positions
    depthwise = groups > 1 and groups == cin
    return macs * (DEPTHWISE_INEFFICIENCY if depthwise else 1.0) + ELEMENT_COST * (in_elements + cout * positions) \
        + OP_COST


def module_cost(module, shapes: Shapes) -> float:
    """Cost of an existing Conv2d or Linear at its measured activation sizes."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features + ELEMENT_COST * (shapes.in_elements + shapes.out_elements) \
            + OP_COST
    k = module.kernel_size[0] * module.kernel_size[1]
    return conv_cost(module.in_channels, module.out_channels, k, module.groups, shapes.out_positions, shapes.in_elements)


def model_cost(model, shapes: dict) -> float:
    modules = dict(model.named_modules())
    return sum(module_cost(modules[name], s) for name, s in shapes.items())


def replacement_cost(replacement, shapes: Shapes) -> float:
    """Cost of the modules that would replace a layer, run on that layer's input shape."""
    import torch

    return model_cost(replacement, layer_shapes(replacement, torch.zeros(shapes.in_shape)))


@dataclass(frozen=True)
class Saving:
    layer: float  # fraction of the layer's cost the rewrite saves (negative: it costs more)
    model: float  # fraction of the whole model's cost


def rewrite_saving(original, replacement, shapes: Shapes, total: float) -> Saving:
    before = module_cost(original, shapes)
    saved = before - replacement_cost(replacement, shapes)
    return Saving(saved / before, saved / total)
