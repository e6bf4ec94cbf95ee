"""Fidelity: is edgebench's median what each runtime's own tool reports, on the same artifact?

- OpenVINO: edgebench's OpenVINO runner + timing loop vs OpenVINO's `benchmark_app` (shipped with
  the openvino wheel; `python -m openvino.tools.benchmark.main` is the same tool) on the same IR,
  latency hint, sync API, same thread count (all physical cores) and inference precision.
- ONNX Runtime: vs `onnxruntime_perf_test` where it is on PATH (it is not in the pip wheel; it
  comes with a source build), else vs a minimal loop of the call edgebench times
  (`run_with_iobinding` on bound inputs, outputs copied back). edgebench's wall clock is compared:
  ORT's only own clock is its profiler's `model_run`, which slows Run (about x3 on this model), so
  its ratio to the wall median is printed beside, not compared.
- PyTorch: vs a minimal `model(x)` loop under inference_mode.
- TensorRT: vs `trtexec`, only where a GPU and trtexec exist (not on this machine).

Each pair runs for `--rounds` rounds. Where both sides run in this process (edgebench's runner and
loop against a minimal loop of the runtime's own call), each side is loaded once and kept, and each
round alternates blocks of 50 ms between them, so that the moments this VM is slower fall on both.
A pair with benchmark_app alternates whole rounds, and since benchmark_app is a new process every
round, so is edgebench's side: where a process's threads and memory land moves a median by up to
2x on this VM, and one kept process would carry its own luck into every round. The ratio
reported is median(edgebench) / median(reference) per round, and the median over rounds. Goal:
within 5%.

    python benchmarks/fidelity.py                   # ~3 min on 2 cores
    python benchmarks/fidelity.py --model resnet18 --size 96 --seconds 5
    python benchmarks/fidelity.py --model mobilenet_v3_large --size 224 --out benchmarks/results/fidelity-large

Throughput (the offline scenario, several requests in flight): edgebench's OpenVINO
AsyncInferQueue under the THROUGHPUT hint vs `benchmark_app -hint throughput` (async API), both
left to choose their own streams and threads; compared as ms per sample (1000 / FPS), so the ratio
reads like the latency ones.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# In-process pairs alternate blocks this long: this VM's speed moves within seconds (one ONNX
# Runtime session went from 0.41 to 0.67 ms between two 4 s rounds), so only a fine alternation
# puts the same moments on both sides.
BLOCK_S = 0.05
SETTLE = 2  # untimed calls at the start of each block (caches, thread pools), on both sides alike


def minimal_loop(fn, seconds: float) -> np.ndarray:
    """Milliseconds of each `fn()` over `seconds`, after SETTLE untimed calls: the simplest honest loop."""
    for _ in range(SETTLE):
        fn()
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return np.asarray(samples)


def edgebench_timer(runtime: str, artifact: Path, precision: str, threads: int, sample: np.ndarray,
                    clock: str = "wall"):
    """Load `artifact` in edgebench's runner once; the returned function times it with edgebench's
    loop for `seconds` and gives the samples on `clock`: wall (the Python call, what a Python
    application sees) or runtime (the runtime's own per-inference figure, what its C++ tool counts)."""
    from edgebench.backends import Placement, create_runner
    from edgebench.measure.timing import TimingConfig, measure

    runner = create_runner(runtime)
    runner.load(artifact, Placement("cpu", precision, threads))
    # A fixed time budget and a CI target that is never met: as much timing as the reference gets.
    config = TimingConfig(time_budget_s=BLOCK_S, target_ci=0.0, max_iterations=10 ** 6, min_iterations=1,
                          warmup_iterations=SETTLE, warmup_s=0.0)

    def samples_over(seconds: float) -> np.ndarray:
        own: list = []
        _, samples = measure(runner, {"input": sample}, replace(config, time_budget_s=seconds), runtime_samples=own)
        if clock == "runtime":
            if not own:
                raise RuntimeError(f"{runtime} keeps no clock of its own")
            return np.asarray(own)
        return samples

    return samples_over


def interleaved_round(ours, theirs, seconds: float) -> tuple[float, float]:
    """One round of an in-process pair: `seconds` of each side in blocks of BLOCK_S, alternating
    A B B A ..., and the median of each side's pooled samples."""
    pooled: tuple[list, list] = ([], [])
    for k in range(max(2, int(round(seconds / BLOCK_S)))):
        for i in ((0, 1) if k % 2 == 0 else (1, 0)):
            pooled[i].extend((ours, theirs)[i](BLOCK_S))
    return float(np.median(pooled[0])), float(np.median(pooled[1]))


def ort_profiled_ratio(onnx_path: Path, threads: int, sample: np.ndarray) -> dict:
    """What ORT's own clock says beside edgebench's wall median, side by side in one process: the
    median `model_run` of a separate profiled pass over the median wall time of unprofiled calls."""
    from edgebench.backends import Placement, create_runner
    from edgebench.measure.timing import TimingConfig, measure

    runner = create_runner("onnxruntime")
    runner.load(onnx_path, Placement("cpu", "fp32", threads))
    feed = {"input": sample}
    stats, _ = measure(runner, feed, TimingConfig(time_budget_s=1.0))
    profiled = float(np.median(runner.profiled_latency_ms(feed, 100)))
    runner.close()
    return {"skipped": f"not compared: profiled model_run {profiled:.3f} ms vs wall {stats.median_ms:.3f} ms, "
                       f"x{profiled / stats.median_ms:.2f} (the profiler's own cost)"}


def benchmark_app_median(xml: Path, threads: int, precision: str, seconds: float) -> float:
    tool = shutil.which("benchmark_app")
    cmd = [tool] if tool else [sys.executable, "-m", "openvino.tools.benchmark.main"]
    # benchmark_app refuses -nthreads with a hint. The latency hint means one stream on all physical
    # cores; for fewer threads the same thing is spelled out: no hint, one stream, n threads.
    from edgebench.devices.host import physical_cores

    settings = ["-hint", "latency"] if threads == physical_cores() else \
        ["-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    cmd += ["-m", str(xml), "-d", "CPU", *settings, "-api", "sync",
            "-infer_precision", precision, "-t", str(max(1, int(round(seconds))))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    match = re.search(r"Median:\s+([\d.]+) (ms|us)", out)  # it switches to us below 1 ms
    if not match:
        raise RuntimeError("benchmark_app printed no median:\n" + out[-2000:])
    return float(match.group(1)) / (1000.0 if match.group(2) == "us" else 1.0)


def edgebench_throughput_timer(xml: Path, precision: str, sample: np.ndarray):
    """edgebench's offline throughput on OpenVINO, loaded once; the returned function gives ms per
    sample (1000 / samples per second) over `seconds`."""
    from edgebench.backends import Placement, create_runner
    from edgebench.measure.throughput import ThroughputConfig, measure_throughput

    runner = create_runner("openvino")
    runner.load(xml, Placement("cpu", precision, None, 1, {"hint": "throughput"}))
    streams = runner.throughput_streams()

    def ms_per_sample(seconds: float) -> float:
        stats, _, _ = measure_throughput(streams, {"input": sample}, 1, ThroughputConfig(warmup_s=0.5, time_budget_s=seconds))
        return 1000.0 / stats.samples_per_s

    return ms_per_sample


def benchmark_app_ms_per_sample(xml: Path, precision: str, seconds: float) -> float:
    tool = shutil.which("benchmark_app")
    cmd = [tool] if tool else [sys.executable, "-m", "openvino.tools.benchmark.main"]
    cmd += ["-m", str(xml), "-d", "CPU", "-hint", "throughput", "-api", "async", "-infer_precision", precision,
            "-t", str(max(1, int(round(seconds))))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    match = re.search(r"Throughput:\s+([\d.]+) FPS", out)
    if not match:
        raise RuntimeError("benchmark_app printed no throughput:\n" + out[-2000:])
    return 1000.0 / float(match.group(1))


def edgebench_in_a_new_process(side: str, xml: Path, threads: int, sample_path: Path):
    """edgebench's side of a pair with benchmark_app, in a fresh process each round as benchmark_app
    is: where a process's threads and memory land moves one artifact's median by up to 2x on this
    VM (benchmarks/results/repeatability*.md), so a side kept in one process would carry that one
    process's luck into every round while benchmark_app draws afresh each time."""
    def ms(seconds: float) -> float:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one-side", side, "--xml", str(xml),
                              "--threads", str(threads), "--sample", str(sample_path), "--seconds", str(seconds)],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"edgebench's side ({side}) failed:\n{out.stderr[-2000:]}")
        return float(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
    return ms


def one_side(args) -> None:
    """--one-side: one round of edgebench's side in this (fresh) process; prints {"ms": ...}."""
    sample = np.load(args.sample)
    xml = Path(args.xml)
    if args.one_side == "throughput":
        ms = edgebench_throughput_timer(xml, "fp32", sample)(args.seconds)
    else:  # the runtime clock of sequential latency, as benchmark_app -api sync counts it
        samples_over = edgebench_timer("openvino", xml, "fp32", args.threads, sample, clock="runtime")
        samples_over(0.2)  # warm-up, discarded: benchmark_app's first inference is apart from its loop too
        ms = float(np.median(samples_over(args.seconds)))
    print(json.dumps({"ms": ms}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v3_small")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per tool per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="inference threads (default: physical cores)")
    parser.add_argument("--pairs", nargs="+", metavar="TEXT",
                        help="run only the pairs whose label contains one of these (e.g. benchmark_app)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fidelity"))
    # Internal: edgebench's side of a pair with benchmark_app, one round in a fresh process.
    parser.add_argument("--one-side", choices=["latency", "throughput"], help=argparse.SUPPRESS)
    parser.add_argument("--xml", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    quiet.add_argument(parser)
    args = parser.parse_args()
    if args.one_side:
        return one_side(args)
    guard = quiet.start(args)

    import onnxruntime as ort
    import torch
    import torchvision

    from edgebench.devices.host import cpu_model, physical_cores
    from edgebench.models.export import export_onnx, onnx_to_openvino

    threads = args.threads or physical_cores()
    torch.manual_seed(0)
    module = getattr(torchvision.models, args.model)(weights=None, num_classes=10).eval()
    sample = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    work = Path(tempfile.mkdtemp(prefix="eb-fidelity-"))
    onnx_path = export_onnx(module, work / "model.onnx", np.repeat(sample, 2, 0), rtol=1e-2, atol=1e-3)
    xml = onnx_to_openvino(onnx_path, work / "ir")
    torch.save(module, work / "model.pt")
    sample_path = work / "sample.npy"
    np.save(sample_path, sample)
    from edgebench.core.signing import sign

    sign(work / "model.pt")  # the PyTorch runner loads only pickled modules this user's edgebench signed

    def ort_reference():
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        binding = session.io_binding()
        binding.bind_cpu_input(session.get_inputs()[0].name, sample)
        binding.bind_output(session.get_outputs()[0].name)

        def call() -> None:
            session.run_with_iobinding(binding)
            binding.copy_outputs_to_cpu()

        return lambda seconds: minimal_loop(call, seconds)

    def ort_perf_test(seconds: float) -> float:
        # -m times -r N: a fixed number of runs (its duration mode prints no median); -x intra-op threads.
        runs = max(10, int(seconds * 1e3 / max(ort_reference_ms[0], 0.05)))
        out = subprocess.run([str(shutil.which("onnxruntime_perf_test")), "-e", "cpu", "-m", "times", "-r", str(runs),
                              "-x", str(threads), str(onnx_path)], capture_output=True, text=True, timeout=600).stdout
        match = re.search(r"P50 Latency:\s+([\d.eE+-]+) s", out)
        if not match:
            raise RuntimeError("onnxruntime_perf_test printed no P50 latency:\n" + out[-2000:])
        return float(match.group(1)) * 1e3

    ort_reference_ms = [float(np.median(ort_reference()(args.seconds)))]  # sizes perf_test's run count

    def ov_python_reference():
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        compiled = ov.Core().compile_model(str(xml), "CPU", {
            hints.performance_mode: hints.PerformanceMode.LATENCY, hints.inference_precision: "f32",
            props.inference_num_threads: threads})
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(sample, shared_memory=True))
        return lambda seconds: minimal_loop(request.infer, seconds)

    def torch_reference():
        torch.set_num_threads(threads)
        x = torch.from_numpy(sample)

        def samples_over(seconds: float) -> np.ndarray:
            with torch.inference_mode():
                return minimal_loop(lambda: module(x), seconds)

        return samples_over

    def a_new_process_each_round(fn):
        return lambda: fn  # each round starts its own process: nothing to keep loaded

    def median_of(load):
        def loaded():
            samples_over = load()
            return lambda seconds: float(np.median(samples_over(seconds)))
        return loaded

    # Each pair: (load edgebench's side, load the reference, in one process?). Both sides are loaded
    # once and kept over every round. In-process pairs alternate blocks of BLOCK_S within each round
    # (interleaved_round); a pair with a tool that is its own process alternates whole rounds.
    pairs = {
        # Runtime clock against runtime clock: benchmark_app counts the plugin's own latency, and so
        # does InferRequest.latency, which edgebench records beside the wall time (--clock runtime).
        "openvino fp32 (runtime clock) vs benchmark_app": (
            a_new_process_each_round(edgebench_in_a_new_process("latency", xml, threads, sample_path)),
            a_new_process_each_round(lambda seconds: benchmark_app_median(xml, threads, "f32", seconds)), False),
        # benchmark_app's median is the plugin's own per-request latency, measured in C++; a Python
        # application also pays the call, which this minimal loop includes and benchmark_app does not.
        "openvino fp32 vs request.infer() loop": (lambda: edgebench_timer("openvino", xml, "fp32", threads, sample),
                                                  ov_python_reference, True),
        "openvino fp32 throughput (ms/sample) vs benchmark_app -hint throughput": (
            a_new_process_each_round(edgebench_in_a_new_process("throughput", xml, threads, sample_path)),
            a_new_process_each_round(lambda seconds: benchmark_app_ms_per_sample(xml, "f32", seconds)), False),
        # Unverified here: onnxruntime_perf_test is not on this machine (not in the pip wheel).
        **({"onnxruntime fp32 vs onnxruntime_perf_test": (
            median_of(lambda: edgebench_timer("onnxruntime", onnx_path, "fp32", threads, sample)),
            a_new_process_each_round(ort_perf_test), False)} if shutil.which("onnxruntime_perf_test") else {}),
        "onnxruntime fp32 vs run_with_iobinding loop": (
            lambda: edgebench_timer("onnxruntime", onnx_path, "fp32", threads, sample), ort_reference, True),
        "pytorch fp32 vs eager loop": (lambda: edgebench_timer("pytorch", work / "model.pt", "fp32", threads, sample),
                                       torch_reference, True),
    }
    if args.pairs:
        pairs = {label: pair for label, pair in pairs.items() if any(text in label for text in args.pairs)}
        if not pairs:
            parser.error(f"--pairs {' '.join(args.pairs)} matches no pair")
    results = {}
    for label, (load_ours, load_theirs, in_process) in pairs.items():
        ours, theirs = load_ours(), load_theirs()
        if in_process:
            interleaved_round(ours, theirs, 0.5)  # warm-up, discarded
        rounds = []
        for r in range(args.rounds):
            if in_process:
                a, b = interleaved_round(ours, theirs, args.seconds)
            else:
                a, b = (ours(args.seconds), theirs(args.seconds)) if r % 2 == 0 else \
                    tuple(reversed((theirs(args.seconds), ours(args.seconds))))
            rounds.append({"edgebench_ms": a, "reference_ms": b, "ratio": a / b})
            print(f"{label:40s} round {r}: edgebench {a:.3f} ms, reference {b:.3f} ms, ratio {a / b:.3f}", flush=True)
        ratio = float(np.median([x["ratio"] for x in rounds]))
        results[label] = {"rounds": rounds, "median_ratio": ratio, "within_5pct": abs(ratio - 1) <= 0.05}
    if not shutil.which("onnxruntime_perf_test") and not args.pairs:
        results["onnxruntime vs onnxruntime_perf_test"] = {
            "skipped": "onnxruntime_perf_test not on PATH (not in the pip wheel); compared with a minimal loop only"}
    if not args.pairs:
        results["onnxruntime profiler model_run / edgebench wall"] = ort_profiled_ratio(onnx_path, threads, sample)
        results["tensorrt vs trtexec"] = {"skipped": "no NVIDIA GPU / trtexec on this machine" if not shutil.which(
            "trtexec") else "not automated yet"}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": "fidelity", "cpu": cpu_model(), "threads": threads, "model": args.model, "size": args.size,
            "seconds_per_tool": args.seconds, "rounds": args.rounds,
            "load_average_1_5_15m_at_end": [round(v, 1) for v in __import__("os").getloadavg()], "results": results,
            "note": "shared, noisy machine unless stated otherwise; rerun on a quiet one"}
    meta["load"] = guard.check_writable()
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    lines = [f"# Fidelity: edgebench vs each runtime's own tool ({cpu_model()}, {threads} threads)", "",
             f"`python benchmarks/fidelity.py {' '.join(sys.argv[1:])}`".replace(str(ROOT) + "/", ""), "",
             f"{args.model} at {args.size}x{args.size}, {args.rounds} alternating rounds of {args.seconds} s per tool; "
             "in-process pairs: each side loaded once and kept, alternating blocks of "
             f"{BLOCK_S * 1e3:.0f} ms within each round; pairs with benchmark_app: whole rounds, each side in a "
             "fresh process every round (benchmark_app is one).",
             "", "| pair | edgebench ms (median of rounds) | reference ms | ratio | rounds' ratios (min-max) | within 5% |",
             "|---|---|---|---|---|---|"]
    for label, r in results.items():
        if "rounds" in r:
            lines.append(f"| {label} | {np.median([x['edgebench_ms'] for x in r['rounds']]):.3f} | "
                         f"{np.median([x['reference_ms'] for x in r['rounds']]):.3f} | {r['median_ratio']:.3f} | "
                         f"{min(x['ratio'] for x in r['rounds']):.3f}-{max(x['ratio'] for x in r['rounds']):.3f} | "
                         f"{'yes' if r['within_5pct'] else 'no'} |")
        else:
            lines.append(f"| {label} | - | - | - | - | {r['skipped']} |")
    lines += ["", f"Load average at the end (1/5/15 min): {meta['load_average_1_5_15m_at_end']} on "
                  f"{__import__('os').cpu_count()} logical CPUs."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
