"""Report rendering from rows: escaping everywhere a name is shown, and the pick it leads with."""
from edgebench.report.charts import run_charts
from edgebench.report.html import render_html
from edgebench.report.markdown import md, summary_markdown
from edgebench.report.summary import recommend, recommendations

EVIL = "<script>alert(1)</script>"


def _row(name, **kw):
    row = dict(key=name, candidate=name, name=name, lineage="baseline", backend="onnxruntime", processor="cpu",
               precision="fp32", executed_precision="fp32", device="host", group="host / cpu", source="measured",
               status="ok", error=None, measured_on="here", top1=0.9, top1_ci_low=0.88, top1_ci_high=0.92,
               accuracy_total=1000, median_ms=1.0, p90_ms=1.1, p99_ms=1.2, mean_ms=1.0, ci_low_ms=0.99,
               ci_high_ms=1.01, iterations=100, stop_reason="ci-reached", throughput_ips=1000.0, size_mb=1.0,
               params=1000, macs=10**6, peak_rss_mb=100.0, load_s=0.1, first_inference_ms=2.0,
               estimate_error_pct=None, node_id=None, runtime_version="1", speedup=None, speedup_low=None,
               speedup_high=None, pareto=True, flags=[], layers=[], shape=None, agreement=[])
    row.update(kw)
    # The quality axis follows top-1, as report/table.py's quality_fields makes it for labelled rows.
    top1 = row["top1"]
    row.update(quality=top1, quality_metric="top1" if top1 is not None else "none",
               quality_label="top-1" if top1 is not None else "not measured", quality_chance=None,
               quality_text=f"top-1 {100 * top1:.1f}%" if top1 is not None else "not measured")
    return row


def test_names_from_models_are_escaped_in_page_and_chart_data():
    html = render_html({"model_name": EVIL, "device": "host", "figures_are_target": True, "environment": {}},
                       [_row(EVIL, lineage=EVIL, flags=[EVIL], layers=[{"layer": EVIL, "op_type": EVIL, "time_us": 3}])],
                       [{"name": EVIL, "id": "x", "lineage_text": EVIL, "notes": [EVIL]}], {EVIL: EVIL})
    body, _, scripts = html.partition("<script>")
    assert EVIL not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    chart_json = scripts.split("const CHARTS", 1)[1]
    assert "alert(1)</script>" not in chart_json and "<script" not in chart_json
    # Plotly draws HTML in its labels, so the chart strings carry entities, not tags.
    assert "\\u0026lt;script\\u0026gt;" in chart_json


def test_chart_strings_are_entity_escaped_for_plotly():
    rows = [_row(EVIL, lineage=EVIL, backend=EVIL, group=EVIL)]
    chart = run_charts(rows, {})[0]
    texts = [chart["layout"]["title"]["text"]] + [t["name"] for t in chart["data"]] + \
        [s for t in chart["data"] for s in t.get("text", [])]
    assert texts and all("<script>" not in s for s in texts)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in s for s in texts)


def test_markdown_escapes_names_and_table_cells():
    rows = [_row(EVIL + " | a*b*", flags=[EVIL]), _row("base", top1=0.5, median_ms=0.5, status="failed", error=EVIL)]
    text = summary_markdown({"model_name": EVIL, "device": "x|y"}, rows)
    assert "<script>" not in text and "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text
    for line in text.splitlines():
        if line.startswith("| ") and "script" in line:
            assert line.count(" | ") == 7  # the name's '|' did not add a column
    assert md("a|b*c_d`e[f]") == "a\\|b\\*c\\_d\\`e\\[f\\]"


def test_pick_ignores_accuracy_differences_the_evaluation_cannot_resolve():
    # A slower INT8 that is 1.2 points "better" on 360 images (intervals of +-5 points) must not win.
    fast = _row("baseline", top1=0.694, top1_ci_low=0.645, top1_ci_high=0.74, median_ms=0.027)
    slow = _row("ptq-int8", precision="int8", top1=0.706, top1_ci_low=0.657, top1_ci_high=0.75, median_ms=0.039)
    assert recommend([fast, slow])["key"] == "baseline"
    # With a large evaluation set the same gap is real, and the more accurate one wins.
    fast.update(top1_ci_low=0.690, top1_ci_high=0.698)
    assert recommend([fast, slow])["key"] == "ptq-int8"


def test_picks_are_per_group_and_measured_first():
    measured = _row("a", median_ms=1.0)
    estimate = _row("b", group="jetson / gpu", source="estimated", median_ms=0.1, device="jetson")
    picks = recommendations([estimate, measured])
    assert [(p["group"], p["source"]) for p in picks] == [("host / cpu", "measured"), ("jetson / gpu", "estimated")]
    assert recommend([estimate, measured])["key"] == "a"  # never compares an estimate with a measurement
    assert any("estimate" in why for why in picks[1]["reasons"])
    # When the user asked about the Jetson, its (estimated) pick and chart lead.
    asked = recommendations([measured, estimate], device="jetson")
    assert [p["group"] for p in asked] == ["jetson / gpu", "host / cpu"]
    html = render_html({"model_name": "m", "device": "jetson", "figures_are_target": False, "environment": {}},
                       [measured, estimate], [], {})
    assert html.index("jetson / gpu (estimated)") < html.index("host / cpu (measured)")


def test_static_plot_draws_odd_names_literally(tmp_path):
    from edgebench.report.plots import pareto_png

    odd = r"cost $\notacommand$ " + EVIL
    rows = [_row(odd), _row("fast", median_ms=0.1, ci_low_ms=0.09, ci_high_ms=0.11, top1=0.5, top1_ci_low=0.45,
                                      top1_ci_high=0.55)]
    written = pareto_png(rows, tmp_path / "pareto.png", odd)  # mathtext would raise on '\notacommand'
    assert [p.suffix for p in written] == [".png", ".svg"] and all(p.stat().st_size > 5000 for p in written)


def test_static_plot_names_its_quality_axis_or_says_latency_only(tmp_path):
    from edgebench.report.plots import pareto_png

    def unlabelled(name, quality, text, **kw):
        return dict(_row(name, top1=None, **kw), quality=quality, quality_text=text,
                    quality_metric="agreement" if quality is not None else "none",
                    quality_label="cosine vs FP32" if quality is not None else "not measured")

    agreeing = [unlabelled("baseline", 1.0, "cosine vs FP32 1.0000"),
                unlabelled("ptq-int8", 0.998, "cosine vs FP32 0.9980", precision="int8", median_ms=0.5,
                           ci_low_ms=0.49, ci_high_ms=0.51)]
    pareto_png(agreeing, tmp_path / "a.png", "agreement")
    svg = (tmp_path / "a.svg").read_text()
    assert "cosine similarity with the FP32 outputs" in svg and "top-1" not in svg
    timed = [unlabelled("baseline", None, "not measured: random data times the model only"),
             unlabelled("ptq-int8", None, "not measured: random data times the model only", median_ms=0.5,
                        precision="int8")]
    written = pareto_png(timed, tmp_path / "t.png", "timed")
    assert [p.suffix for p in written] == [".png", ".svg"]
    svg = (tmp_path / "t.svg").read_text()
    assert "latency only: quality not measured: random data" in svg and "ptq-int8 (onnxruntime, int8)" in svg


def test_int8_flag_compares_with_the_real_parent():
    """prune50-ptq is compared with prune50 on the same runtime, not with the unpruned baseline."""
    from edgebench.core.records import CandidateInfo, Measurement
    from edgebench.report.table import build_rows

    base = CandidateInfo(id="baseline", name="baseline", lineage=({"pass": "baseline", "config": {}},))
    pruned = CandidateInfo(id="prune50-a", name="prune50", lineage=base.lineage + ({"pass": "prune", "config": {}},))
    quant = CandidateInfo(id="prune50-ptq-b", name="prune50-ptq", precision="int8", parent="prune",
                          lineage=pruned.lineage + ({"pass": "ptq", "config": {}},))

    def m(cid, ms, precision="fp32"):
        return Measurement(key=cid, candidate=cid, backend="onnxruntime", processor="cpu", precision=precision,
                           device="host", source="measured", status="ok",
                           latency={"median_ms": ms, "ci_low_ms": ms, "ci_high_ms": ms}, accuracy={"top1": 0.9})

    # INT8 beats the baseline (2.0 ms) but is slower than its pruned parent (1.0 ms): flagged.
    rows = build_rows([base, pruned, quant], [m("baseline", 2.0), m("prune50-a", 1.0), m("prune50-ptq-b", 1.5, "int8")])
    flags = {r["candidate"]: r["flags"] for r in rows}
    assert flags["prune50-ptq-b"] and "1.50x" in flags["prune50-ptq-b"][0]


def test_no_pick_at_chance_and_a_single_option_is_not_better_than_others():
    poor = _row("untrained", top1=0.054)
    poor["quality_chance"] = 0.1
    assert recommend([poor]) is None
    text = summary_markdown({"model_name": "m", "device": "host"}, [poor])
    assert "No pick" in text and "chance" in text and "| untrained |" in text  # latency still listed
    only = _row("only", top1=0.9)
    (pick,) = recommendations([only])
    assert "only option" in " ".join(pick["reasons"]) and "every other option" not in " ".join(pick["reasons"]).lower()
    assert "only option" in pick["sentence"]


def test_many_rows_flagged_for_one_reason_read_as_one_line_in_every_format():
    from edgebench.report.flags import add_flag, group_flags

    rows = [_row(f"cand{i}", flags=[]) for i in range(5)]
    for i, r in enumerate(rows):
        add_flag(r, "busy", f"measured while the machine was busy (load {i}.5 on 2 cores): unreliable")
    add_flag(rows[0], "int8 slower", "INT8 slower than its FP32 parent on onnxruntime (1.30x)")
    groups = group_flags(rows)
    assert [(g.kind, len(g.entries), g.grouped) for g in groups] == [("busy", 5, True), ("int8 slower", 1, False)]

    run = {"model_name": "m", "device": "host", "figures_are_target": True, "environment": {}}
    html = render_html(run, rows, [], {})
    assert html.count("measured while the machine was busy: unreliable, left out of the Ship pick: <b>5 rows</b>") == 1
    assert "load 3.5 on 2 cores" in html  # each row's own reason is still there, folded
    assert "INT8 slower than its FP32 parent on onnxruntime (1.30x)" in html
    text = summary_markdown(run, rows)
    busy_lines = [line for line in text.splitlines() if "busy" in line and line.startswith("- ")]
    assert len(busy_lines) == 1 and "5 rows" in busy_lines[0] and "cand4 / onnxruntime" in busy_lines[0]
