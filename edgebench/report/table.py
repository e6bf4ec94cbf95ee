"""One flat table of a run: a row per measurement, joined with its candidate, with the derived
figures every report format shows (speedup against the baseline, Pareto membership, flags)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from edgebench.backends import BACKENDS
from edgebench.core import validate
from edgebench.core.errors import CorruptInputError, NotFoundError
from edgebench.core.records import CandidateInfo, Measurement
from edgebench.core.store import RunStore
from edgebench.measure.contention import busy_text, is_busy
from edgebench.measure.scenarios import SCENARIO
from edgebench.measure.unplanned import BUILD
from edgebench.report.flags import add_flag
from edgebench.report.pareto import pareto_front
from edgebench.report.speedup import latency_speedup, rows_disagree


def lineage_text(lineage) -> str:
    parts = []
    for step in lineage:
        cfg = step.get("config") or {}
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items() if not isinstance(v, dict))
        transfer = step.get("transfer")  # a distill step's unlabelled images (models/transfer.py)
        if transfer:
            shown += (", " if shown else "") + f"transfer={transfer['images']} images of {transfer['source']}"
        parts.append(f"{step['pass']}({shown})" if shown else step["pass"])
    return " -> ".join(parts) or "baseline"


def _group(m: Measurement) -> str:
    """Rows compared with each other: one device / processor, one input shape set, one batch size
    and one scenario (single-stream batch 1 reads as before scenarios existed)."""
    return (f"{m.device} / {m.processor}" + (f" / {m.shape}" if m.shape else "")
            + (f" / batch {m.batch_size}" if m.batch_size != 1 else "")
            + (f" / {m.scenario}" if m.scenario != "single-stream" else ""))


def scenario_fields(m: Measurement) -> dict:
    """The scenario's own figure (MLPerf's statistic for it) and the axis the row is ranked on:
    latency (median ms) for single- and multi-stream, throughput for offline, drawn as ms per
    sample (1 / throughput) so that lower is better on every chart."""
    scenario = SCENARIO.get(m.scenario, SCENARIO["single-stream"])
    lat, tp = m.latency or {}, m.throughput or {}
    per_s = tp.get("samples_per_s")
    if scenario.throughput:
        value = per_s
        # 46,200 rather than 4.62e+04: a rate people read at a glance
        rate = f"{per_s:,.0f}" if per_s and per_s >= 100 else f"{per_s:.3g}" if per_s else None
        text = f"{rate} samples/s ({tp.get('in_flight')} in flight)" if rate else "-"
    else:
        value = lat.get(scenario.statistic)
        text = f"{scenario.statistic_label} {value:.3g} ms" if value is not None else "-"
        if value is not None and m.extra.get("served_as"):  # a fixed-batch model's query, as requests in flight
            text += f", {m.extra['served_as']}"
    throughput_axis = bool(scenario.throughput and per_s)
    return {"scenario": m.scenario, "batch_size": m.batch_size, "scenario_statistic": scenario.statistic_label,
            "scenario_value": value, "scenario_text": text, "samples_per_s": per_s, "in_flight": tp.get("in_flight"),
            "in_flight_idiom": tp.get("idiom"), "axis": "throughput" if throughput_axis else "latency",
            "axis_ms": 1000.0 / per_s if throughput_axis and per_s else lat.get("median_ms")}


def quality_fields(m: Measurement) -> dict:
    """The quality axis of a row: its value, what it is, and how to print it. Top-1 where labels
    scored the model; otherwise the measurement's own quality record (agreement with FP32, a user
    metric, or not measured with the reason)."""
    q = m.quality or {}
    if m.top1 is not None:
        return {"quality": m.top1, "quality_metric": "top1", "quality_label": "top-1",
                "quality_text": f"top-1 {100 * m.top1:.1f}%", "quality_chance": q.get("chance")}
    if q.get("metric") == "agreement":
        first = (q.get("per_output") or [{}])[0]
        sqnr = first.get("sqnr_db")
        extra = f", SQNR {sqnr:.1f} dB" if isinstance(sqnr, (int, float)) and abs(sqnr) != float("inf") else ""
        return {"quality": q["value"], "quality_metric": "agreement", "quality_label": "cosine vs FP32",
                "quality_text": f"cosine vs FP32 {q['value']:.4f}{extra}", "quality_chance": None}
    if q.get("metric") not in (None, "none") and q.get("value") is not None:
        return {"quality": q["value"], "quality_metric": q["metric"], "quality_label": q["metric"],
                "quality_text": f"{q['metric']} {q['value']:.4g}", "quality_chance": None}
    return {"quality": None, "quality_metric": "none", "quality_label": "not measured",
            "quality_text": q.get("description") or ("not measured" if m.ok else "-"), "quality_chance": None}


def build_rows(candidates: list[CandidateInfo], measurements: list[Measurement]) -> list[dict[str, Any]]:
    by_id = {c.id: c for c in candidates}
    ok = [m for m in measurements if m.ok and m.latency]
    # Speed is compared like with like: the same group (shape, batch, scenario) on the same runtime,
    # on the row's axis (latency, or ms per sample for an offline row).
    axis = {m.key: scenario_fields(m)["axis_ms"] for m in ok}
    baseline_latency = {(m.device, m.processor, m.backend, m.source, _group(m)): axis[m.key]
                        for m in ok if m.latency and m.candidate == "baseline" and m.precision == "fp32"}
    rows, int8_rows = [], []
    for m in measurements:
        if m.backend == BUILD and m.ok:
            continue  # a recipe that built: its candidate's rows speak for it
        c = by_id.get(m.candidate)
        lat = m.latency or {}
        row: dict[str, Any] = {
            "key": m.key, "candidate": m.candidate, "name": c.name if c else m.candidate,
            "lineage": lineage_text(c.lineage) if c else "", "backend": m.backend, "processor": m.processor,
            "precision": m.precision, "executed_precision": m.executed_precision, "device": m.device,
            "group": _group(m), "source": m.source, "status": m.status, "error": m.error,
            "measured_on": m.measured_on, "top1": m.top1,
            "top1_ci_low": (m.accuracy or {}).get("ci_low"), "top1_ci_high": (m.accuracy or {}).get("ci_high"),
            "accuracy_total": (m.accuracy or {}).get("total"), "num_classes": c.num_classes if c else None,
            "median_ms": lat.get("median_ms"), "p90_ms": lat.get("p90_ms"), "p99_ms": lat.get("p99_ms"),
            "mean_ms": lat.get("mean_ms"), "ci_low_ms": lat.get("ci_low_ms"), "ci_high_ms": lat.get("ci_high_ms"),
            "iterations": lat.get("iterations"), "stop_reason": lat.get("stop_reason"),
            "throughput_ips": (m.throughput or {}).get("samples_per_s") or
            ((1000.0 * m.batch_size / lat["median_ms"]) if lat.get("median_ms") else None),
            "size_mb": _size_mb(c, m.backend), "params": c.params if c else None, "macs": c.macs if c else None,
            "peak_rss_mb": m.peak_rss_mb, "load_s": m.load_s, "first_inference_ms": m.first_inference_ms,
            "estimate_error_pct": m.estimate_error_pct, "node_id": m.node_id, "runtime_version": m.runtime_version,
            "estimate_method": (m.extra.get("estimate") or {}).get("method"),
            "estimate_basis": (m.extra.get("estimate") or {}).get("error_basis"),
            "speedup": None, "speedup_low": None, "speedup_high": None, "speedup_basis": None, "pareto": False,
            "flags": [], "flag_kinds": [],
            "contended": is_busy(m.extra),
            "interval_basis": None if m.source != "measured" or not lat else
            f"{m.extra['processes']['count']} processes" if m.extra.get("processes") else "one process",
            "ranked_by": m.extra.get("ranked_by") if m.source == "measured" else None,
            "runtime_median_ms": (m.extra.get("runtime_clock") or {}).get("median_ms"),
            # "per timed call" (OpenVINO) or "separate profiled pass" (ONNX Runtime's profiler, never ranked by)
            "runtime_clock_basis": (m.extra.get("runtime_clock") or {}).get("basis"),
            "wall_median_ms": (m.extra.get("wall_clock") or {}).get("median_ms") or lat.get("median_ms"),
            "shape": m.shape, "agreement": _agreement_rows(m), **quality_fields(m), **scenario_fields(m),
        }
        runner = BACKENDS.get(m.backend) if m.backend in BACKENDS else None
        if runner is not None and runner.unverified and m.status == "ok":
            add_flag(row, f"unverified {m.backend}", f"{m.backend} is UNVERIFIED: {runner.unverified}")
        if (m.extra.get("estimate") or {}).get("raised_to_lower_bound"):
            add_flag(row, "below the physical bound",
                     f"the estimator predicted less than this device's physical lower bound "
                     f"({m.extra['estimate']['physical_lower_bound_ms']:.3g} ms from its peak compute, "
                     "bandwidth and dispatch floors); shown at the bound")
        if row["contended"]:
            add_flag(row, "busy", f"{'based on figures ' if m.source == 'estimated' else ''}measured while the machine "
                                  f"was busy ({busy_text(m.extra)}): unreliable, left out of the Ship pick")
        base = baseline_latency.get((m.device, m.processor, m.backend, m.source, _group(m)))
        mine = row["axis_ms"] if m.ok else None
        if base and mine:
            row["speedup"] = base / mine
            if row["axis"] == "latency":
                base_m = next(x for x in ok if x.candidate == "baseline" and x.precision == "fp32" and
                              (x.device, x.processor, x.backend, x.source, _group(x)) ==
                              (m.device, m.processor, m.backend, m.source, _group(m)))
                if m.source == "measured":
                    row.update(latency_speedup(m, base_m))
                    disagreement = rows_disagree(m, base_m, row)
                    if disagreement:
                        add_flag(row, "placement", disagreement)
                else:
                    # Estimates: conservative, from the two medians' own intervals.
                    base_lat = base_m.latency or {}  # never empty: base_m is from `ok`
                    row["speedup_low"] = base_lat["ci_low_ms"] / lat["ci_high_ms"]
                    row["speedup_high"] = base_lat["ci_high_ms"] / lat["ci_low_ms"]
                    row["speedup_basis"] = "from the two intervals"
        rows.append(row)
        if c and c.precision == "int8" and mine:
            int8_rows.append((row, m, _parent_id(c, candidates)))
    by_place = {(r["candidate"], r["device"], r["processor"], r["backend"], r["source"], r["group"]): r
                for r in rows if r["precision"] == "fp32" and r["status"] == "ok"}
    for row, m, parent_id in int8_rows:
        place = (m.device, m.processor, m.backend, m.source, _group(m))
        slower = _int8_against_parent(row, by_place.get((parent_id, *place)) or by_place.get(("baseline", *place)))
        if slower:
            add_flag(row, "int8 slower", f"INT8 slower than its FP32 parent on {m.backend} ({slower}){_float_ops_hint(m)}")
    _mark_front(rows)
    return rows


def _int8_against_parent(row: dict, parent: Optional[dict]) -> Optional[str]:
    """How much slower an INT8 row is than its FP32 parent's row, or None when it is not. From the
    in-process A/B where both sides have one (each timed beside the same baseline in its own worker:
    the ratio of the two speedups), since the two rows' medians come from separate processes whose
    placement can move either; else from the two medians."""
    if parent is None or not row["axis_ms"] or not parent["axis_ms"]:
        return None

    def side_by_side(r: dict) -> Optional[float]:
        if r["candidate"] == "baseline":
            return 1.0
        return r["speedup"] if (r["speedup_basis"] or "").startswith("in-process") else None
    mine, theirs = side_by_side(row), side_by_side(parent)
    if mine and theirs:
        ratio = theirs / mine
        return f"{ratio:.2f}x, each timed beside the FP32 baseline in one process" if ratio > 1 else None
    ratio = row["axis_ms"] / parent["axis_ms"]
    return f"{ratio:.2f}x" if ratio > 1 else None


def _agreement_rows(m: Measurement) -> list[dict]:
    """Per-output agreement with FP32 (cosine, SQNR, max abs error, top-1 agreement)."""
    q = m.quality or {}
    return list(q.get("per_output") or []) if q.get("metric") == "agreement" else []


def _parent_id(c: CandidateInfo, candidates: list[CandidateInfo]) -> str:
    """The stored candidate this one was derived from: the one whose lineage is this one's minus
    its last step (prune50 for prune50-ptq), else the baseline."""
    wanted = json.dumps(list(c.lineage[:-1]), sort_keys=True, default=str)
    for other in candidates:
        if json.dumps(list(other.lineage), sort_keys=True, default=str) == wanted:
            return other.id
    return "baseline"


def _float_ops_hint(m: Measurement) -> str:
    if not m.layers:
        return ""
    total = sum(r.get("time_us", 0) for r in m.layers) or 1
    float_time = sum(r.get("time_us", 0) for r in m.layers if r.get("precision") in ("fp32", "bf16", "fp16"))
    qdq = sum(r.get("time_us", 0) for r in m.layers if r.get("op_type") in ("QuantizeLinear", "DequantizeLinear"))
    hint = f": {100 * float_time / total:.0f}% of time in float ops"
    return hint + (f", {100 * qdq / total:.0f}% in Q/DQ" if qdq else "")


def _mark_front(rows: list[dict]) -> None:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok" and r["axis_ms"] is not None and r["quality"] is not None:
            groups.setdefault(f"{r['group']}|{r['source']}", []).append(r)
    for members in groups.values():
        for i in pareto_front([(r["axis_ms"], r["quality"]) for r in members]):
            members[i]["pareto"] = True


def _size_mb(c: CandidateInfo | None, backend: str) -> float | None:
    if not c or not c.file_bytes:
        return None
    # The artifact this runtime deploys; a runtime edgebench has no runner for shows the ONNX size.
    fmt = BACKENDS.get(backend).deployed_format(c.file_bytes) if backend in BACKENDS else None
    size = c.file_bytes.get(fmt or "onnx") or next(iter(c.file_bytes.values()))
    return size / 1e6


def load_tables(run_dir: Path) -> tuple[dict, list[CandidateInfo], list[Measurement], list[dict]]:
    """(run info, candidates, measurements, rows) of a run folder, or of a report.json file."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        try:
            data = json.loads(run_dir.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptInputError(f"'{run_dir}' is not a report.json written by edgebench: {e}") from None
        run = data.get("run") or {}
        dropped: dict[str, str] = {}
        cands = _valid(data.get("candidates"), validate.candidate, "candidate", dropped)
        meas = _valid(data.get("measurements"), validate.measurement, "measurement", dropped)
        try:
            run = validate.run_info(run)
        except validate.InvalidRecord as e:
            raise CorruptInputError(f"'{run_dir}': its 'run' is not what edgebench writes ({e})") from None
        return _with_dropped(run, dropped), cands, meas, build_rows(cands, meas)
    if not (run_dir / "run.json").is_file() and not (run_dir / "measurements.jsonl").is_file():
        raise NotFoundError(f"'{run_dir}' is not a run folder (it has no run.json or measurements.jsonl)")
    store = RunStore(run_dir)
    cands, meas = store.candidates(), store.measurements()
    return _with_dropped(store.run_info(), store.dropped), cands, meas, build_rows(cands, meas)


def _valid(records, check, what: str, dropped: dict) -> list:
    if not isinstance(records, list):
        if records is not None:
            dropped[f"{what}s"] = "not a list"
        return []
    kept = []
    for i, record in enumerate(records):
        try:
            kept.append(check(record))
        except validate.InvalidRecord as e:
            dropped[f"{what} {i}"] = str(e)
    return kept


def _with_dropped(run: dict, dropped: dict) -> dict:
    """run.json plus what reading left out, so that every report says it (earlier lists are replaced)."""
    run = {k: v for k, v in run.items() if k != "dropped"}
    return dict(run, dropped=dict(dropped)) if dropped else run
