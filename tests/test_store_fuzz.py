"""Random JSON values and random lines thrown at the run-folder loaders: each ends as a clean
one-line error or a line left out (and quarantined), never a traceback."""
import json
import shutil

from helpers.run_folder import make_run, measured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.core.errors import EdgebenchError
from edgebench.core.records import CandidateInfo
from edgebench.core.store import RunStore
from edgebench.report.markdown import summary_markdown
from edgebench.report.table import load_tables

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)

GOOD = measured("baseline", 1.0).to_dict()
CANDIDATE = CandidateInfo(id="baseline", name="baseline", lineage=({"pass": "baseline", "config": {}},)).to_dict()


def mutated(record: dict):
    """A valid record with one field (or one field of a nested record) replaced by any JSON value."""
    nested = [("latency", k) for k in record.get("latency") or {}] + [("accuracy", k) for k in record.get("accuracy") or {}]
    paths = [(k,) for k in record] + nested
    return st.tuples(st.sampled_from(paths), json_values).map(lambda pv: _set(record, *pv))


def _set(record, path, value):
    out = json.loads(json.dumps(record))
    target = out
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return out


lines = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(GOOD).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)


def read_everything(root) -> None:
    run, cands, meas, rows = load_tables(root)
    summary_markdown(run, rows)  # the rows are usable by every report format's code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, min_size=1, max_size=6))
def test_random_measurement_lines_are_left_out_or_read(tmp_path_factory, bad_lines):
    root = tmp_path_factory.mktemp("fuzz")
    store = make_run(root / "r")
    good = len(store.measurements())
    with open(store.measurements_path, "ab") as f:
        f.write(b"\n".join(bad_lines) + b"\n")
    store = RunStore(store.root)
    found = store.measurements()
    assert len(found) + len(store.dropped) >= good  # a line is either read (maybe superseding) or dropped
    read_everything(store.root)
    with store:
        moved = store.quarantine()
    assert moved == len(store.dropped)
    fresh = RunStore(store.root)
    fresh.measurements()
    assert not fresh.dropped  # what was bad is out of the way; a resume reads a clean file
    shutil.rmtree(root)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, mutated(CANDIDATE)))
def test_random_candidate_json_is_left_out_with_its_reason(tmp_path_factory, value):
    root = tmp_path_factory.mktemp("fuzz")
    store = make_run(root / "r")
    (store.candidate_dir("baseline") / "candidate.json").write_text(json.dumps(value))
    store = RunStore(store.root)
    got = store.load_candidate("baseline")
    assert got is not None or "candidate baseline" in store.dropped
    read_everything(store.root)
    shutil.rmtree(root)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60)))
def test_random_run_json_is_read_or_a_one_line_error(tmp_path_factory, content):
    root = tmp_path_factory.mktemp("fuzz")
    store = make_run(root / "r")
    (store.root / "run.json").write_bytes(content)
    try:
        read_everything(store.root)
    except EdgebenchError as e:
        assert "\n" not in str(e)
    shutil.rmtree(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(["run", "candidates", "measurements"]),
                                              st.lists(st.one_of(json_values, mutated(GOOD)), max_size=3)
                                              | json_values)))
def test_random_report_json_is_read_or_a_one_line_error(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("fuzz") / "report.json"
    path.write_text(json.dumps(value))
    try:
        read_everything(path)
    except EdgebenchError as e:
        assert "\n" not in str(e)
