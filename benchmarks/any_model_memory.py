"""Peak memory of `compare det.onnx --input-shape x=1x3x640x640` on a dynamic-shape detector.

The issue this guards: asking for a large input used to build the whole built-in dataset at that
size (MNIST at 640x640 float32: 24.6 GB) for a model that is never scored. The eval set is now
drawn one picture at a time and capped (measure/eval_sets.py), so peak memory should stay far under
4 GB. Runs the real CLI under /usr/bin/time -v and records the maximum resident set size of the
CLI process (workers are separate processes; each is bounded by the same cap).

    python benchmarks/any_model_memory.py [--size 640] [--recipes baseline,ptq-int8]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portable import portable  # noqa: E402  (benchmarks/portable.py: no machine paths in results)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--recipes", default="baseline,ptq-int8")
    parser.add_argument("--timing-budget", default="0.5")
    parser.add_argument("--no-save", action="store_true", help="smoke test: do not write results/")
    args = parser.parse_args()
    from tests.helpers.any_models import build_all

    with tempfile.TemporaryDirectory(prefix="eb-anymem-") as tmp:
        det = build_all(Path(tmp) / "models")["detector"]
        env = dict(os.environ, EDGEBENCH_CACHE=str(Path(tmp) / "cache"), COLUMNS="160",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "edgebench.cli", "compare", str(det),
               "--input-shape", f"x=1x3x{args.size}x{args.size}", "--recipes", args.recipes,
               "--timing-budget", args.timing_budget, "--runs-dir", str(Path(tmp) / "runs"), "--name", "run"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        info = json.loads((Path(tmp) / "runs" / "run" / "run.json").read_text())
    result = {"command": " ".join(cmd[2:]), "exit_code": proc.returncode, "peak_rss_mb": round(peak_kb / 1024, 1),
              "wall_s": round(wall, 1), "eval_sets": info["inputs"]["shape_sets"], "load_1m": os.getloadavg()[0]}
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "any_model_memory.json").write_text(json.dumps(portable(result), indent=2) + "\n")


if __name__ == "__main__":
    main()
