"""How artifacts and built candidates travel between the machine running compare and cluster nodes
(no cluster needed): every file a runtime needs goes along, and nothing unpacks outside its folder."""
import io
import tarfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def test_ir_bundle_carries_its_weights_and_loads_after_unpacking(tiny_onnx, tmp_path, digits):
    from edgebench.backends import Placement, create_runner
    from edgebench.execute.ray.tasks import _unpack, pack

    bundle = pack(tiny_onnx["openvino"])
    assert list(bundle) == ["model.xml", "model.bin"]
    moved = _unpack(bundle, tmp_path / "node")
    runner = create_runner("openvino")
    runner.load(moved, Placement("cpu", "fp32"))
    assert runner.infer({"input": digits.eval.x[:1]})[0].shape == (1, 10)


def test_onnx_bundle_carries_external_data(tmp_path):
    from edgebench.execute.ray.tasks import _unpack, pack

    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight])
    src = tmp_path / "src" / "model.onnx"
    src.parent.mkdir()
    onnx.save(helper.make_model(graph), str(src), save_as_external_data=True, location="weights.data",
              size_threshold=0)
    bundle = pack(src)
    assert sorted(bundle) == ["model.onnx", "weights.data"]
    moved = _unpack(bundle, tmp_path / "node")
    import onnxruntime as ort

    out = ort.InferenceSession(str(moved)).run(None, {"x": np.ones((1, 64), np.float32)})[0]
    assert np.allclose(out, np.arange(4096, dtype=np.float32).reshape(64, 64).sum(0))


def test_candidate_archive_cannot_write_outside_the_run_folder(tmp_path):
    from edgebench.core.store import RunStore
    from edgebench.execute.ray.builds import unpack_candidate

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    run = tmp_path / "run"
    with pytest.raises((tarfile.TarError, ValueError)):
        unpack_candidate(RunStore(run), {"id": "x", "name": "x"}, buffer.getvalue())
    assert not (tmp_path / "escaped.txt").exists()
