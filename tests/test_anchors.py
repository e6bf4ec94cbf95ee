"""Device profiles cite published measurements; the leave-one-anchor-out validation never
predicts an anchor from itself, and a device without comparable anchors is unvalidated."""
from __future__ import annotations

from edgebench.devices.profiles import Anchor, all_profiles
from edgebench.estimate.anchors import leave_one_anchor_out, summarize_errors


def test_profiles_carry_sourced_anchors():
    profiles = all_profiles()
    anchors = [a for p in profiles.values() for a in p.anchors]
    assert len(anchors) == 96 and all(a.source and a.reliability in "ABC" for a in anchors)
    assert sum(a.usable_latency for a in profiles["jetson-agx-orin"].anchors) >= 10
    mlperf = next(a for a in profiles["jetson-agx-orin"].anchors if a.scenario == "SingleStream" and a.model == "resnet50")
    assert mlperf.latency_ms == 0.640 and mlperf.reliability == "A" and mlperf.precision == "int8"
    # throughput at large batch is never a latency anchor
    assert not any(a.usable_latency for a in profiles["nvidia-h100"].anchors)


def _anchor(model, ms, threads=4):
    return Anchor(model=model, input=[1, 3, 224, 224], runtime="onnxruntime", processor="cpu", precision="fp32",
                  threads=threads, latency_ms=ms, reliability="B", source="test")


def test_leave_one_anchor_out_holds_each_anchor_out():
    profile = all_profiles()["raspberry-pi-5"].model_copy(update={"anchors": [
        _anchor("resnet18", 10.0), _anchor("resnet50", 25.0), _anchor("mobilenet_v2", 4.0, threads=1)]})
    seen = []

    def ratio(a, b):
        seen.append((a.model, b.model))
        assert a is not b
        return 2.5 if (a.model, b.model) == ("resnet50", "resnet18") else 0.4

    rows = leave_one_anchor_out(profile, ratio)
    assert {r["model"] for r in rows} == {"resnet18", "resnet50"}  # mobilenet_v2 has no peer at 1 thread
    assert all(abs(r["error"]) < 1e-9 for r in rows) and ("resnet50", "resnet18") in seen
    assert summarize_errors(rows)["within_25pct"] == 1.0
    assert summarize_errors([])["status"] == "unvalidated"
