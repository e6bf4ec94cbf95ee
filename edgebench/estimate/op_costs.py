"""What an ONNX graph asks of the hardware: FLOPs and bytes moved, per operator.

The latency estimator (estimate.py) turns these into time with a roofline per operator. Shapes
come from ONNX shape inference with the batch fixed; ops that cost nothing at run time (shape
plumbing, weight dequantization that runtimes fold into the weights) are left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# Op groups get their own efficiency factor: a runtime reaches a very different fraction of peak
# on a dense convolution than on a depthwise one or on an elementwise op.
GROUPS = ("conv", "dwconv", "gconv", "gemm", "pool", "elementwise", "other")

ELEMENTWISE = {"Relu", "Clip", "Add", "Sub", "Mul", "Div", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf",
               "BatchNormalization", "LeakyRelu", "PRelu", "Exp", "Sqrt", "Pow", "Gelu", "Softmax", "Neg", "Max",
               "Min", "Where", "Elu", "Selu", "Softplus", "Mish", "Dropout", "LayerNormalization", "Cast"}
POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum"}
FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "Identity", "ConstantOfShape",
        "Gather", "Slice", "Range", "Expand"}

BYTES_PER_ELEMENT = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class OpCost:
    name: str
    op_type: str
    group: str
    flops: float
    bytes_moved: float  # activations in + out + weights, at the precision it runs in
    winograd: bool = False  # a dense 3x3, stride-1, dilation-1 convolution (winograd_eligible)


def winograd_eligible(node, weight_shape: list, group: int) -> bool:
    """A convolution that CPU runtimes with Winograd kernels compute as F(m, 3) tiles: dense
    (group 1), 3x3, stride 1, dilation 1, at least 8 input or output channels. The condition is
    ncnn's (Tencent/ncnn src/layer/x86/convolution_x86.cpp and src/layer/arm/convolution_arm.cpp,
    `prefer_winograd ... kernel_w == 3 && kernel_h == 3 && dilation 1 && stride 1`, with
    `num_input >= 8 || num_output >= 8` on ARM, `> 8` on x86); the arithmetic it saves is A. Lavin, S. Gray, "Fast
    Algorithms for Convolutional Neural Networks", CVPR 2016 (arXiv:1509.09308)."""
    if group != 1 or len(weight_shape) != 4 or list(weight_shape[2:]) != [3, 3]:
        return False
    attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
    if any(v != 1 for v in attrs.get("strides", [1, 1]) + attrs.get("dilations", [1, 1])):
        return False
    return weight_shape[0] >= 8 or weight_shape[1] >= 8


def _dims(value_info) -> list[int]:
    return [d.dim_value if d.dim_value > 0 else 1 for d in value_info.type.tensor_type.shape.dim]


def _fold_shape_arithmetic(model):
    """`model` with what is computed from constants and shapes folded (onnxscript's constant folding
    with ONNX shape inference). A reshape, chunk or view on a dynamic batch leaves its shape
    arithmetic in the exported graph (ShuffleNetV2's channel shuffle, attention's head split:
    Shape, Gather, Div, Concat feeding Reshape or Slice); plain shape inference cannot see through
    it, so every size after it is lost (ShuffleNetV2 x1.0 came out at 0.019 of its 0.145 G
    multiply-accumulates) and each scalar op counts as an operator. Only the folding, none of the
    optimizer's rewrites (they drop the zero biases of random-weight convolutions). Without
    onnxscript (a measuring-only install) the graph is costed as exported."""
    if not any(node.op_type == "Shape" for node in model.graph.node):
        return model  # no shape arithmetic to fold (most CNNs): skip the second or two folding takes
    try:
        from onnxscript import ir, optimizer
    except ImportError:
        return model
    folded_model = ir.serde.deserialize_model(model)
    for _ in range(4):  # a fold can expose another (shape -> gather -> slice bounds)
        folded = optimizer.fold_constants(folded_model, onnx_shape_inference=True)
        optimizer.remove_unused_nodes(folded_model)
        if not folded.modified:
            break
    return ir.serde.serialize_model(folded_model)


@lru_cache(maxsize=64)
def _graph_costs(path: str, mtime: float, batch: int) -> tuple[OpCost, ...]:  # mtime: a rewritten file is new
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and (dims[0].dim_param or dims[0].dim_value == 0):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    model = shape_inference.infer_shapes(_fold_shape_arithmetic(model))
    g = model.graph
    shapes = {vi.name: _dims(vi) for vi in list(g.value_info) + list(g.input) + list(g.output)}
    inits = {t.name: list(t.dims) for t in g.initializer}
    init_names = set(inits)
    # Outputs of DequantizeLinear on a weight are weights too (the runtime folds them).
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in init_names:
            init_names.add(node.output[0])
            inits[node.output[0]] = inits[node.input[0]]
        if node.op_type == "Constant":
            init_names.add(node.output[0])
            for a in node.attribute:
                if a.name == "value":
                    inits[node.output[0]] = list(numpy_helper.to_array(a.t).shape)

    def numel(name: str) -> int:
        shape = shapes.get(name) or inits.get(name) or []
        return int(np.prod(shape)) if shape else 1

    costs = []
    for i, node in enumerate(g.node):
        winograd = False
        op = node.op_type
        if op in FREE or (op in ("QuantizeLinear", "DequantizeLinear") and node.input[0] in init_names):
            continue
        name = node.name or f"{op}_{i}"
        out = node.output[0]
        act_in = sum(numel(x) for x in node.input if x and x not in init_names)
        weights = sum(numel(x) for x in node.input if x and x in init_names)
        elems = act_in + weights + numel(out)
        if op in ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv"):
            w = inits.get(node.input[3] if op == "QLinearConv" else node.input[1]) or [1, 1, 1, 1]
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            in_channels = (shapes.get(node.input[0]) or [1, 1])[1]
            flops = 2.0 * numel(out) * int(np.prod(w[1:]))
            kind = "conv" if group == 1 else "dwconv" if group == in_channels else "gconv"
            winograd = op == "Conv" and winograd_eligible(node, w, group)
        elif op in ("MatMul", "Gemm", "MatMulInteger", "QGemm"):
            a = shapes.get(node.input[0]) or inits.get(node.input[0]) or [1]
            transposed = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if transposed and len(a) > 1 else a[-1]
            flops, kind = 2.0 * numel(out) * k, "gemm"
        elif op in POOL:
            flops, kind = float(act_in), "pool"
        elif op in ELEMENTWISE:
            flops, kind = float(numel(out)), "elementwise"
        else:  # Q/DQ of activations, Concat, Transpose, Pad, Resize, ...: data movement
            flops, kind = 0.0, "other"
        costs.append(OpCost(name, op, kind, flops, float(elems), winograd))
    return tuple(costs)


def graph_costs(path: Path, batch: int = 1) -> list[OpCost]:
    """Per-operator FLOPs and element counts (bytes per element depend on the precision: BYTES_PER_ELEMENT)."""
    p = Path(path)
    return list(_graph_costs(str(p.resolve()), p.stat().st_mtime, batch))


