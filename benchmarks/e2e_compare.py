"""Wall time and peak memory of the README's main job, `edgebench compare mobilenetv3 --device jetson`.

Runs the real CLI in a fresh run folder and a fresh cache (so the baseline is trained, not reused),
and records wall time and the peak RSS of the process tree (the CLI and its worker processes).

    python benchmarks/e2e_compare.py [--repeat N] [extra compare args...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import quiet  # benchmarks/quiet.py: the shared quiet-machine guard (this script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results"


def run_once(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="eb-e2e-") as tmp:
        env = dict(os.environ, EDGEBENCH_CACHE=str(Path(tmp) / "cache"), COLUMNS="160")
        cmd = [sys.executable, "-m", "edgebench.cli", "compare", "mobilenetv3", "--device", "jetson",
               "--runs-dir", str(Path(tmp) / "runs"), *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"compare failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        run_dir = next((Path(tmp) / "runs").iterdir())
        rows = [json.loads(line) for line in (run_dir / "measurements.jsonl").read_text().splitlines() if line.strip()]
    # ru_maxrss of children is the largest single child (the CLI process or one worker), in KiB on Linux.
    peak_child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "peak_rss_mb_largest_process": peak_child_mb, "measurements": len(rows),
            "ok": sum(r["status"] == "ok" for r in rows), "stdout_tail": proc.stdout[-2500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    quiet.add_argument(parser)
    args, extra = parser.parse_known_args()
    guard = quiet.start(args)
    runs = [run_once(extra) for _ in range(args.repeat)]
    walls = [r["wall_s"] for r in runs]
    result = {
        "command": "edgebench compare mobilenetv3 --device jetson " + " ".join(extra),
        "repeat": args.repeat, "wall_s_median": statistics.median(walls), "wall_s_all": walls,
        "peak_rss_mb_largest_process": max(r["peak_rss_mb_largest_process"] for r in runs),
        "measurements": runs[-1]["measurements"], "ok": runs[-1]["ok"], "cpu_count": os.cpu_count(),
        "goal": "wall time within 600 s on 2 cores",
    }
    RESULTS.mkdir(exist_ok=True)
    result["load"] = guard.check_writable()
    (RESULTS / "e2e_compare.json").write_text(json.dumps(result, indent=2) + "\n")
    print(runs[-1]["stdout_tail"])
    print(json.dumps({k: v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
