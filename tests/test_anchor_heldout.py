"""The held-out test of the device estimator (benchmarks/anchor_heldout.py): its predictions are the
estimator's own, its figures are no anchors, and the op costs the estimator was tuned on stay put."""
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from edgebench.devices.profiles import all_profiles
from edgebench.estimate.anchor_hardware import anchor_ops, buildable
from edgebench.estimate.anchors import check, roofline_ratio
from edgebench.estimate.reference import REFERENCE_OPS_FILE

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def heldout():
    spec = importlib.util.spec_from_file_location("anchor_heldout_bench", BENCH / "anchor_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def figures(heldout):
    return heldout.load_figures()


def _figure(figures, device, model, runtime):
    return next(f for f in figures["figures"][device] if f.model == model and f.runtime == runtime)


def test_a_heldout_prediction_is_what_compare_would_estimate(heldout, figures):
    """Recomputed through the path `compare` takes for a candidate (anchors.check(...).predict on the
    model's op costs), not the scorer's own: both must give the same figure from the same anchors."""
    pi4 = all_profiles()["raspberry-pi-4"]
    figure = _figure(figures, "raspberry-pi-4", "shufflenet_v2_x1_0", "onnxruntime")
    row = heldout.predict_figure(pi4, figure, roofline_ratio(pi4))
    group = check(pi4, "onnxruntime", "cpu", "fp32")
    assert row["from"] == sorted(a.model for a in group.anchors)
    assert row["predicted_ms"] == pytest.approx(group.predict(anchor_ops(figure)), rel=1e-6)
    assert row["error"] == pytest.approx(row["predicted_ms"] / figure.latency_ms - 1, abs=1e-4)


def test_heldout_figures_are_no_anchors_and_each_is_predicted_from_its_own_run(heldout, figures):
    profiles = all_profiles()
    for device, device_figures in figures["figures"].items():
        anchored = {a.model for a in profiles[device].anchors}
        for f in device_figures:
            assert f.model not in anchored, (device, f.model)  # held out: no profile cites the model
            assert f.model in figures["counterparts"], f.model
            assert buildable(f), (device, f.model)  # its op costs ship
    # Peers come from the figure's own run only: the AGX Orin's 8-thread ncnn squeezenet transfers
    # from that run's four anchors, not from the 1- or 4-thread mobilenet_v2 or the GPU's resnet50.
    orin = profiles["jetson-agx-orin"]
    figure = next(f for f in figures["figures"]["jetson-agx-orin"] if f.model == "squeezenet1_1" and f.threads == 8)
    row = heldout.predict_figure(orin, figure, roofline_ratio(orin))
    assert row["from"] == ["efficientnet_b0", "mobilenet_v3_large", "resnet18", "resnet50"]
    assert row["predicted_ms"] > 0 and "8 0 -1 0" in row["run"]


def test_a_figure_with_no_peaks_is_reported_not_predicted(heldout, figures):
    npu = all_profiles()["intel-core-ultra-npu"]
    igpu = next(f for f in figures["figures"]["intel-core-ultra-npu"] if f.processor == "igpu")
    row = heldout.predict_figure(npu, igpu, roofline_ratio(npu))
    assert row["from"] == ["resnet18"]  # a peer, but the profile states no iGPU peaks to take a ratio on
    assert row["predicted_ms"] is None and "igpu" in row["not_predicted"]


def test_the_op_costs_the_estimator_was_tuned_on_are_unchanged():
    """reference_ops.json's entries for the anchors' five models, as they were when the forms in
    benchmarks/results/anchor_validation.md were chosen (benchmarks/reference_ops.py --add-missing
    adds models without touching them). A change here moves every anchored estimate."""
    data = json.loads(REFERENCE_OPS_FILE.read_text())
    old = ("efficientnet_b0@224", "mobilenet_v2@224", "mobilenet_v3_large@224", "resnet18@224", "resnet50@224")
    kept = {"models": {k: data["models"][k] for k in old},
            "winograd_eligible": {k: data["winograd_eligible"][k] for k in old}}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    assert digest == "27da247b8ef1f8d867e25e997818d99fc9c933932b46714faa99ee9c358e23a3"


def test_op_costs_fold_the_shape_arithmetic_of_a_dynamic_batch(tmp_path, monkeypatch):
    """A channel shuffle and chunk on a dynamic batch (ShuffleNetV2's) leave Shape/Gather/Div/Slice
    arithmetic in the exported graph; folded at batch 1, the convolution after it keeps its size and
    the scalar ops do not count as operators. Reference models and candidates are costed alike."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from edgebench.estimate import op_costs
    from edgebench.estimate.op_costs import graph_costs
    from edgebench.models.export import export_onnx

    class Shuffle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.first(x)
            b, c, h, w = x.shape
            x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
            kept, moved = x.chunk(2, dim=1)
            return torch.cat((kept, self.second(moved)), dim=1)

    path = export_onnx(Shuffle().eval(), tmp_path / "shuffle.onnx",
                       np.zeros((1, 3, 8, 8), dtype=np.float32), rtol=1e-2, atol=1e-3)
    folded = graph_costs(path)
    second = 2 * (4 * 8 * 8) * (4 * 3 * 3)  # output elements x input channels x kernel, x2 for a MAC
    assert [op.flops for op in folded if op.group == "conv"] == [2 * 8 * 8 * 8 * 3, second]
    assert all(op.op_type not in ("Div", "Mul", "Cast", "Add") for op in folded)
    # costed as exported, the chunk's bounds hide the second convolution's size
    op_costs._graph_costs.cache_clear()
    monkeypatch.setattr(op_costs, "_fold_shape_arithmetic", lambda model: model)
    assert [op.flops for op in graph_costs(path) if op.group == "conv"][1] != second
    op_costs._graph_costs.cache_clear()
