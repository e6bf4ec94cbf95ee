"""A deliberately slower copy of an ONNX model, to check that a gate catches a known slowdown.

The copy computes the same outputs plus a side branch whose cost is set by `width`: the first
output goes through two matrix products with `width` columns (a GEMV with a width x width matrix
dominates), is reduced to a scalar, multiplied by zero and added back to the output. The runtime
cannot prove the branch dead (the zero multiplies a value computed from the input), so it runs it
on every inference; the outputs, and so the accuracy, stay the same. The matrices are made at
load time (ConstantOfShape), so the file, and the size gate, barely change.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def add_dead_work(source: Path, target: Path, width: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    if width <= 0:
        onnx.save(model, str(target))
        return Path(target)
    out = graph.output[0]
    dims = out.type.tensor_type.shape.dim
    if out.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 2 or not dims[1].dim_value:
        from edgebench.core.errors import IncompatibleError
        raise IncompatibleError("the slowed copy needs a model whose first output is float N x K")
    classes = dims[1].dim_value
    inner = f"{out.name}__before_dead_work"
    for node in graph.node:
        node.output[:] = [inner if o == out.name else o for o in node.output]
    graph.initializer.extend([
        numpy_helper.from_array(np.array([classes, width], dtype=np.int64), "dead_work_shape_in"),
        numpy_helper.from_array(np.array([width, width], dtype=np.int64), "dead_work_shape_square"),
        numpy_helper.from_array(np.zeros((), dtype=np.float32), "dead_work_zero")])
    fill = helper.make_tensor("value", TensorProto.FLOAT, [1], [0.01])
    graph.node.extend([
        helper.make_node("ConstantOfShape", ["dead_work_shape_in"], ["dead_work_w_in"], value=fill),
        helper.make_node("ConstantOfShape", ["dead_work_shape_square"], ["dead_work_w"], value=fill),
        helper.make_node("MatMul", [inner, "dead_work_w_in"], ["dead_work_h"]),
        helper.make_node("MatMul", ["dead_work_h", "dead_work_w"], ["dead_work_h2"]),
        helper.make_node("ReduceMean", ["dead_work_h2"], ["dead_work_mean"], keepdims=0),
        helper.make_node("Mul", ["dead_work_mean", "dead_work_zero"], ["dead_work_scaled"]),
        helper.make_node("Add", [inner, "dead_work_scaled"], [out.name]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return Path(target)
