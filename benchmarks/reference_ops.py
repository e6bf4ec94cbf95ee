"""Regenerate edgebench/estimate/reference_ops.json: the operator costs of every reference model
at every input size a device profile's anchors were published at (no timing, any load; ~1 min).

    python benchmarks/reference_ops.py

The file is package data: `compare` reads it to transfer estimates from published anchors and to
state their leave-one-anchor-out error, without exporting resnet50 at run time.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from edgebench.devices.profiles import all_profiles
    from edgebench.estimate.reference import REFERENCE_MODELS, REFERENCE_OPS_FILE, export_reference_ops

    wanted = sorted({(a.model, a.input_size) for p in all_profiles().values() for a in p.anchors
                     if a.model in REFERENCE_MODELS and a.input_size is not None})
    with tempfile.TemporaryDirectory() as work:
        data = export_reference_ops(Path(work), wanted)
    # one operator per line: small, and a regeneration reads as a diff
    body = ",\n".join(f"  {json.dumps(k)}: [\n" + ",\n".join("    " + json.dumps(op) for op in ops) + "\n  ]"
                      for k, ops in data.pop("models").items())
    head = json.dumps(data)[:-1]  # winograd_eligible (op positions per model) stays on the first line
    REFERENCE_OPS_FILE.write_text(head + ', "models": {\n' + body + "\n}}\n")
    print(f"wrote {REFERENCE_OPS_FILE}: " + ", ".join(f"{m}@{s}" for m, s in wanted))


if __name__ == "__main__":
    main()
