"""Ship never recommends a candidate at chance without saying so."""
from helpers.rows import top1_quality

from edgebench.report.summary import at_chance, explain


def _row(key, top1, ci_low, ci_high, ms, name):
    return {"key": key, "candidate": name, "name": name, "backend": "onnxruntime", "precision": "fp32",
            "executed_precision": "fp32", "group": "host / cpu", "source": "measured", "status": "ok",
            "top1": top1, "top1_ci_low": ci_low, "top1_ci_high": ci_high, "median_ms": ms, "num_classes": 10,
            "pareto": True, "accuracy_total": 200, **top1_quality(top1)}


def test_a_pick_at_chance_carries_a_warning_and_a_learned_one_does_not():
    guessing = _row("a", 0.10, 0.06, 0.15, 1.0, "distill")
    learned = _row("b", 0.93, 0.89, 0.96, 2.0, "baseline")
    assert at_chance(guessing) and not at_chance(learned)
    assert "Warning: its top-1 (10.0%) is at chance for 10 classes" in explain(guessing, [guessing, learned])
    assert "chance" not in explain(learned, [guessing, learned])
    assert not at_chance({**learned, "num_classes": None})
