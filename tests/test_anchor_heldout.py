"""The held-out test of the device estimator (benchmarks/anchor_heldout.py): its predictions are the
estimator's own, it never scores an anchor against itself, the first set was adopted as anchors
whole (none chosen or dropped by its error), and the op costs the estimator was tuned on stay put."""
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def _adopted(figures, device, model, runtime, **labels):
    return next(f for f in figures["adopted"][device] if f.model == model and f.runtime == runtime
                and all(getattr(f, k) == v for k, v in labels.items()))


def _held_out_again(device, figure):
    """The device's profile as it was before `figure` joined its anchors."""
    profile = all_profiles()[device]
    kept = [a for a in profile.anchors if a != figure]
    assert len(kept) == len(profile.anchors) - 1
    return profile.model_copy(update={"anchors": kept})


def test_the_first_set_was_adopted_whole_and_no_held_out_figure_is_an_anchor(heldout, figures):
    profiles = all_profiles()
    assert not heldout.already_anchors(figures["figures"])  # the fresh set under `figures:` stays out
    faithful = {m for m, c in figures["counterparts"].items() if c["faithful"]}
    adopted = [(device, f) for device, fs in figures["adopted"].items() for f in fs]
    first_set = {"squeezenet1_1", "mnasnet1_0", "shufflenet_v2_x1_0", "regnet_y_400mf", "vgg16", "vgg13"}
    assert len(adopted) == 83 and {f.model for _, f in adopted} == first_set and first_set <= faithful
    for device, f in adopted:  # every faithful figure is an anchor, field for field
        assert buildable(f) and sum(a == f for a in profiles[device].anchors) == 1, (device, f.model, f.threads)
    # the approximate counterpart stayed out: no profile cites googlenet
    assert {f.model for fs in figures["not_adopted"].values() for f in fs} == {"googlenet"}
    assert heldout.count(figures["not_adopted"]) == 13
    assert not any(a.model == "googlenet" for p in profiles.values() for a in p.anchors)


def test_the_fresh_set_is_runs_no_anchor_uses(heldout, figures):
    """The fresh figures (moved to `figures:` once the form was fixed; nothing waits under `fresh:`)
    each come from a run of its own (a device_detail no anchor has, so the comparability rule never
    pairs them with an anchor and none is an anchor already), of models whose op costs ship and
    whose counterpart the file states."""
    profiles, fresh = all_profiles(), figures["figures"]
    assert heldout.count(figures["fresh"]) == 0
    assert heldout.count(fresh) >= 30 and len(fresh) >= 3
    assert not heldout.already_anchors(fresh)
    for device, fs in fresh.items():
        details = {a.device_detail for a in profiles[device].anchors}
        for f in fs:
            assert buildable(f) and f.model in figures["counterparts"], (device, f.model)
            assert f.device_detail and f.device_detail not in details, (device, f.model)
            assert "commit" in f.source and ", row " in f.source


def test_nothing_left_to_score_says_so_and_writes_nothing(heldout, tmp_path):
    raw = yaml.safe_load(heldout.FIGURES.read_text())
    raw["figures"] = {}
    path = tmp_path / "figures.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "results"
    assert heldout.run_heldout(out_dir=out, path=path) is None and not out.exists()
    assert "83 faithful figures were adopted" in heldout.nothing_to_score(heldout.load_figures(path))
    # a name that is not a plain word is refused before anything is scored or written
    done = subprocess.run([sys.executable, str(BENCH / "anchor_heldout.py"), "--name", "../x", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--name" in done.stderr and not out.exists()


def test_a_figure_of_a_run_without_anchors_is_predicted_from_its_own_run(heldout, figures):
    """The fresh Pi 5 run's 1-thread vgg16: no anchor shares its run (its own device_detail), so it
    transfers from that run's other 1-thread figures, never from the anchors' run or its 4-thread run."""
    pi5 = all_profiles()["raspberry-pi-5"]
    run = tuple(figures["figures"]["raspberry-pi-5"])
    figure = next(f for f in run if f.model == "vgg16" and f.threads == 1)
    row = heldout.predict_figure(pi5, figure, roofline_ratio(pi5), run)
    assert row["transferred_from"] == "held-out figures of its own run"
    assert row["from"] == sorted(f.model for f in run if f.threads == 1 and f.model != "vgg16")
    assert len(row["from"]) == 9 and row["predicted_ms"] > 0


def test_an_anchor_is_never_scored_as_a_held_out_figure(heldout, figures, tmp_path):
    raw = yaml.safe_load(heldout.FIGURES.read_text())
    raw["figures"] = {"raspberry-pi-4": raw["adopted"]["raspberry-pi-4"][:1]}
    path = tmp_path / "figures.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "results"
    with pytest.raises(heldout.NotHeldOut, match="raspberry-pi-4"):
        heldout.run_heldout(out_dir=out, path=path)
    assert not out.exists()


def test_a_fresh_figure_is_scored_and_written(heldout, tmp_path):
    """The scorer still works for the next set: a figure no profile cites (the Pi 4's 4-thread ncnn
    googlenet stands in for one) is predicted from its run's anchors and written with its source."""
    raw = yaml.safe_load(heldout.FIGURES.read_text())
    googlenet = [f for f in raw["not_adopted"]["raspberry-pi-4"] if f["threads"] == 4]
    raw["figures"] = {"raspberry-pi-4": googlenet}
    path = tmp_path / "figures.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = heldout.run_heldout(out_dir=tmp_path, path=path)
    [row] = result["figures"]
    assert row["model"] == "googlenet" and not row["faithful_counterpart"] and row["predicted_ms"] > 0
    assert "mobilenet_v2" in row["from"] and "vgg16" in row["from"]  # the run's anchors, adopted ones included
    assert row["source"] in (tmp_path / "anchor_heldout.md").read_text()
    assert row["transferred_from"] == "anchors of its run"
    assert json.loads((tmp_path / "anchor_heldout.json").read_text())["figures"][0]["model"] == "googlenet"
    # a named set is written beside the first set's record, not over it
    heldout.run_heldout(out_dir=tmp_path, path=path, name="next")
    assert "--name next" in (tmp_path / "anchor_heldout-next.md").read_text()
    assert (tmp_path / "anchor_heldout-next.json").is_file()


def test_a_heldout_prediction_is_what_compare_would_estimate(heldout, figures):
    """Recomputed through the path `compare` takes for a candidate (anchors.check(...).predict on the
    model's op costs), not the scorer's own: both must give the same figure from the same anchors.
    The figure is taken out of the Pi 4's anchors again, as it was when it was scored."""
    figure = _adopted(figures, "raspberry-pi-4", "shufflenet_v2_x1_0", "onnxruntime")
    pi4 = _held_out_again("raspberry-pi-4", figure)
    row = heldout.predict_figure(pi4, figure, roofline_ratio(pi4))
    group = check(pi4, "onnxruntime", "cpu", "fp32")
    assert row["from"] == sorted(a.model for a in group.anchors) and "vgg13" in row["from"]
    assert row["predicted_ms"] == pytest.approx(group.predict(anchor_ops(figure)), rel=1e-6)
    assert row["error"] == pytest.approx(row["predicted_ms"] / figure.latency_ms - 1, abs=1e-4)


def test_a_figure_is_predicted_from_its_own_run_only(heldout, figures):
    # The AGX Orin's 8-thread ncnn squeezenet transfers from that run's other figures only, not from
    # the 1- or 4-thread runs (mobilenet_v2 has none at 8 threads) or the GPU's resnet50.
    figure = _adopted(figures, "jetson-agx-orin", "squeezenet1_1", "ncnn", threads=8)
    orin = _held_out_again("jetson-agx-orin", figure)
    row = heldout.predict_figure(orin, figure, roofline_ratio(orin))
    assert row["from"] == ["efficientnet_b0", "mnasnet1_0", "mobilenet_v3_large", "regnet_y_400mf", "resnet18",
                           "resnet50", "shufflenet_v2_x1_0", "vgg16"]
    assert row["predicted_ms"] > 0 and "8 0 -1 0" in row["run"]


def test_a_figure_with_no_peaks_is_reported_not_predicted(heldout, figures):
    igpu = _adopted(figures, "intel-core-ultra-npu", "shufflenet_v2_x1_0", "onnxruntime+openvino-ep", processor="igpu")
    npu = _held_out_again("intel-core-ultra-npu", igpu)
    row = heldout.predict_figure(npu, igpu, roofline_ratio(npu))
    assert row["from"] == ["resnet18", "vgg13"]  # peers, but the profile states no iGPU peaks to take a ratio on
    assert row["predicted_ms"] is None and "igpu" in row["not_predicted"]


def test_the_op_costs_the_estimator_was_tuned_on_are_unchanged():
    """reference_ops.json's entries for the anchors' first five models, as they were when the forms in
    benchmarks/results/anchor_validation.md were chosen (benchmarks/reference_ops.py --add-missing
    adds models without touching them). A change here moves every anchored estimate."""
    data = json.loads(REFERENCE_OPS_FILE.read_text())
    old = ("efficientnet_b0@224", "mobilenet_v2@224", "mobilenet_v3_large@224", "resnet18@224", "resnet50@224")
    kept = {"models": {k: data["models"][k] for k in old},
            "winograd_eligible": {k: data["winograd_eligible"][k] for k in old}}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    assert digest == "27da247b8ef1f8d867e25e997818d99fc9c933932b46714faa99ee9c358e23a3"
    # and those of the six models whose figures were adopted as anchors on 2026-11-30, as they were scored
    adopted = ("mnasnet1_0@224", "regnet_y_400mf@224", "shufflenet_v2_x1_0@224", "squeezenet1_1@227", "vgg13@224",
               "vgg16@224")
    kept = {"models": {k: data["models"][k] for k in adopted},
            "winograd_eligible": {k: data["winograd_eligible"][k] for k in adopted}}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    assert digest == "94026e0350d6a5fce20d00420fddf401500e00695f6e44dcf60003bcfa4f11d4"


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
