from edgebench.report.html import render_html


def _row(name, **kw):
    row = dict(key=name, candidate=name, name=name, lineage="baseline", backend="onnxruntime", processor="cpu",
               precision="fp32", executed_precision="fp32", device="host", group="host / cpu", source="measured",
               status="ok", error=None, measured_on="here", top1=0.9, top1_ci_low=0.88, top1_ci_high=0.92,
               median_ms=1.0, p90_ms=1.1, p99_ms=1.2, mean_ms=1.0, ci_low_ms=0.99, ci_high_ms=1.01, iterations=100,
               stop_reason="ci-reached", throughput_ips=1000.0, size_mb=1.0, params=1000, macs=10**6,
               peak_rss_mb=100.0, load_s=0.1, first_inference_ms=2.0, estimate_error_pct=None, node_id=None,
               runtime_version="1", speedup=None, speedup_low=None, speedup_high=None, pareto=True, flags=[],
               layers=[])
    row.update(kw)
    return row


def test_names_from_models_are_escaped():
    evil = "<script>alert(1)</script>"
    html = render_html({"model_name": evil, "device": "host", "figures_are_target": True, "environment": {}},
                       [_row(evil, lineage=evil, flags=[evil])], [{"name": evil, "id": "x", "lineage_text": evil}],
                       {evil: evil})
    body, _, scripts = html.partition("<script>")
    assert evil not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "alert(1)</script>" not in scripts.split("const CHARTS", 1)[1]
