"""`edgebench report RUN [RUN ...]`: re-render one run, or compare several on one page."""
import json

from test_cli import run_cli

from edgebench.report.compare import load_runs, matched_rows


def test_two_runs_compare_on_one_page(tiny_run, host_run, tmp_path):
    _, jetson = tiny_run
    proc = run_cli("report", str(jetson.run_dir), str(host_run.run_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "comparison.html").is_file()
    text = (tmp_path / "comparison.md").read_text().replace("\\", "")  # Markdown escapes undone
    # Labels say how the runs differ (the device asked for), not just their folder names.
    assert "A: jetson-orin-nano" in text and "B: host" in text

    views = load_runs([jetson.run_dir, host_run.run_dir])
    matched = matched_rows(views)
    both = {(m["name"], m["backend"], m["precision"]) for m in matched}
    a = {(r["name"], r["backend"], r["precision"]) for r in views[0].rows if r["status"] == "ok"}
    b = {(r["name"], r["backend"], r["precision"]) for r in views[1].rows if r["status"] == "ok"}
    assert both == a & b == {("baseline", "onnxruntime", "fp32")}
    m = matched[0]
    ref, new = m["runs"]
    change = m["changes"][1]
    assert abs(change["ratio"] - new["median_ms"] / ref["median_ms"]) < 1e-9
    overlap = new["ci_low_ms"] <= ref["ci_high_ms"] and new["ci_high_ms"] >= ref["ci_low_ms"]
    assert (change["verdict"] == "within noise") == overlap
    row = next(line for line in text.splitlines() if line.startswith("| baseline | onnxruntime | fp32 |"))
    assert f"{ref['median_ms']:.3g}" in row and f"{new['median_ms']:.3g}" in row and "B vs A" in row


def test_report_rerenders_one_run_elsewhere(tiny_run, tmp_path):
    _, result = tiny_run
    proc = run_cli("report", str(result.run_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for name in ("report.html", "report.json", "results.csv", "summary.md", "pareto.png", "pareto.svg"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "report.json").read_text())["rows"]
    assert not (tmp_path / "comparison.html").exists()


def test_report_user_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    for args, code, needle in [(["/no/such/run"], 3, "does not exist"), ([str(empty)], 3, "not a run folder"),
                               ([str(bad)], 4, "not a report.json")]:
        proc = run_cli("report", *args)
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert proc.returncode == code and len(lines) == 1 and needle in lines[0], proc.stderr
