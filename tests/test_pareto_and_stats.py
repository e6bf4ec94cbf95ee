from edgebench.measure.accuracy import wilson_interval
from edgebench.report.pareto import pareto_front


def test_pareto_front_known_answer():
    # (latency, accuracy)
    points = [(1.0, 0.90), (2.0, 0.95), (1.5, 0.89), (3.0, 0.95), (0.5, 0.50), (2.0, 0.94)]
    assert pareto_front(points) == [4, 0, 1]


def test_pareto_front_keeps_ties():
    assert sorted(pareto_front([(1.0, 0.9), (1.0, 0.9)])) == [0, 1]


def test_wilson_interval():
    lo, hi = wilson_interval(95, 100)
    assert 0.88 < lo < 0.95 < hi < 0.985
    assert wilson_interval(0, 10)[0] == 0.0
