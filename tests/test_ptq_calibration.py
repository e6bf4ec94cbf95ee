"""ONNX Runtime INT8 calibration uses every calibration feed: a single large value anywhere among
them widens the quantized input's range."""
import numpy as np
import pytest


def _matmul_relu(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["mm"]), helper.make_node("Relu", ["mm"], ["output"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _input_scale(path) -> float:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    return float(inits[q.input[1]])


@pytest.mark.parametrize("feeds", [16, 19, 40])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_every_calibration_feed_counts(tmp_path, feeds, where):
    from edgebench.compress.ptq import quantize_onnx

    fp32 = _matmul_relu(tmp_path / "model.onnx")
    rng = np.random.default_rng(0)
    calib = [{"input": rng.uniform(0, 1, (1, 4)).astype(np.float32)} for _ in range(feeds)]
    big = {"first": 0, "middle": feeds // 2, "last": feeds - 1}[where]
    calib[big] = {"input": np.full((1, 4), 100.0, np.float32)}
    out = quantize_onnx(fp32, tmp_path / "int8" / "model.int8.onnx", calib, per_channel=False,
                        activation_type="uint8")
    # uint8 over [0, 100]: a scale of 100/255; a range that missed the large feed would be ~1/255.
    assert _input_scale(out) == pytest.approx(100 / 255, rel=0.02)
