"""benchmarks/compression.py --levers: the lever recipes it writes and how it judges the
latency-aware goal, on synthetic rows (the benchmark itself takes most of an hour)."""
import pytest
from helpers.benchmark_module import load_benchmark

from edgebench.compress import DEFAULT_RECIPES, instantiate, load_recipe


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("compression")


def test_each_lever_recipe_is_prune50_with_one_change(bench, tmp_path):
    reference = instantiate(DEFAULT_RECIPES["prune50"])[0].config.model_dump()
    paths = bench.lever_recipes(tmp_path)
    assert len(paths) == len(bench.LEVERS) - 1  # prune50 itself is the default recipe
    names = set()
    for path in paths:
        name, steps = load_recipe(path)
        (step,) = instantiate(steps)
        changed = {k for k, v in step.config.model_dump().items() if reference[k] != v}
        assert step.name == "prune" and step.config.ratio == 0.5
        assert changed == set(bench.LEVERS[name][1]), name
        names.add(name)
    assert names == set(bench.LEVERS) - {"prune50"} and not names & set(DEFAULT_RECIPES)


def _run(seed, uniform, latency):
    """Rows of one seed: (top-1, latency ratio) for the uniform and latency-aware levers."""
    def row(name, top1, ratio):
        return {"candidate": name, "backend": "onnxruntime", "precision": "fp32", "top1": top1,
                "top1_delta_points_vs_baseline": 100 * (top1 - 0.9), "latency_ratio_vs_baseline": ratio}
    return {"seed": seed, "notes": {}, "rows": [row("prune50", *uniform), row("prune50-latency", *latency)]}


@pytest.mark.parametrize(("latency", "met"), [
    ((0.88, 0.40), True),   # faster, same accuracy
    ((0.88, 0.55), False),  # slower
    ((0.85, 0.40), False),  # faster but 3 points worse
])
def test_latency_aware_goal(bench, latency, met):
    runs = [_run(seed, (0.88, 0.50), (latency[0] + 0.002 * seed, latency[1])) for seed in range(3)]
    result = bench.levers(runs, "quick")
    (goal,) = result["goals"]
    assert goal["met"] is met and "onnxruntime" in goal["goal"]
    assert {r["candidate"] for r in result["table"]} == {"prune50", "prune50-latency"}
    assert "Pruning levers" in bench.markdown({"model": "m", "data": "d", "input_size": 8, "machine": "x",
                                               "load_start": [0], "load_end": [0], "command": "c",
                                               "compare_runs": runs, "levers": result})


def test_latency_goal_not_met_when_a_lever_was_not_measured(bench):
    runs = [_run(0, (0.88, 0.50), (0.88, 0.40))]
    runs[0]["rows"] = runs[0]["rows"][:1]
    (goal,) = bench.levers(runs, "quick")["goals"]
    assert goal["met"] is False and "not measured" in goal["value"]


def test_latency_ratio_reads_the_reports_in_process_speedup(bench):
    """A row timed beside the baseline in its worker keeps that speedup and its interval, not the
    ratio of the two rows' medians (which come from separate processes)."""
    def row(name, ms, speedup=None, basis=None):
        return {"name": name, "backend": "onnxruntime", "precision": "fp32", "status": "ok", "lineage": name,
                "executed_precision": "fp32", "top1": 0.9, "median_ms": ms, "ci_low_ms": ms, "ci_high_ms": ms,
                "params": 1, "macs": 1, "flags": [], "speedup": speedup, "speedup_basis": basis,
                "speedup_low": speedup and speedup * 0.9, "speedup_high": speedup and speedup * 1.1}
    table = bench.rows_against_baseline([row("baseline", 2.0, 1.0, "from the two intervals"),
                                         row("prune50", 1.9, 1.6, "in-process A/B against the baseline, one process")])
    pruned = next(r for r in table if r["candidate"] == "prune50")
    assert pruned["latency_ratio_vs_baseline"] == 1 / 1.6
    assert pruned["latency_ratio_interval"] == [1 / (1.6 * 1.1), 1 / (1.6 * 0.9)]
    assert pruned["latency_ratio_basis"].startswith("in-process")
