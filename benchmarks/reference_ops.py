"""Regenerate edgebench/estimate/reference_ops.json: the operator costs of every reference model
at every input size a device profile's anchors or a held-out figure (benchmarks/heldout_figures.yaml)
was published at (no timing, any load; ~1 min).

    python benchmarks/reference_ops.py                 # every entry, exported afresh
    python benchmarks/reference_ops.py --add-missing   # only the (model, size) the file lacks

The file is package data: `compare` reads it to transfer estimates from published anchors and to
state their leave-one-anchor-out error, without exporting resnet50 at run time. `--add-missing`
keeps every existing entry as it is, byte for byte: the estimator's forms were chosen on those
figures, and a torch or torchvision upgrade that moved them would move every anchored estimate.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HELD_OUT_FIGURES = ROOT / "benchmarks" / "heldout_figures.yaml"


def wanted_sizes() -> list[tuple[str, int]]:
    """(model, input size) of every reference-model anchor and held-out figure."""
    import yaml

    from edgebench.devices.profiles import Anchor, all_profiles
    from edgebench.estimate.reference import REFERENCE_MODELS

    anchors = [a for p in all_profiles().values() for a in p.anchors]
    data = yaml.safe_load(HELD_OUT_FIGURES.read_text())
    # every section that lists figures: held out, fresh and the first set's record (googlenet included)
    for section in ("figures", "fresh", "adopted", "not_adopted"):
        figures = data.get(section) or {}
        anchors += [Anchor(**f) for device_figures in figures.values() for f in device_figures or []]
    return sorted({(a.model, a.input_size) for a in anchors
                   if a.model in REFERENCE_MODELS and a.input_size is not None})


def merged(existing: dict, added: dict) -> dict:
    """`existing` with the models and Winograd lists of `added` (a fresh export of models it lacks),
    and a record of the torch and torchvision that computed them."""
    out = {k: v for k, v in existing.items() if k not in ("winograd_eligible", "models")}
    out["added"] = existing.get("added", []) + [
        {"models": sorted(added["models"]), "torch": added["torch"], "torchvision": added["torchvision"],
         "by": "python benchmarks/reference_ops.py --add-missing"}]
    winograd = {**existing.get("winograd_eligible", {}), **added["winograd_eligible"]}
    out["winograd_eligible"] = dict(sorted(winograd.items()))
    out["models"] = dict(sorted({**existing["models"], **added["models"]}.items()))
    return out


def write(data: dict, path: Path) -> None:
    # one operator per line: small, and a regeneration reads as a diff
    data = dict(data)
    body = ",\n".join(f"  {json.dumps(k)}: [\n" + ",\n".join("    " + json.dumps(op) for op in ops) + "\n  ]"
                      for k, ops in data.pop("models").items())
    head = json.dumps(data)[:-1]  # winograd_eligible (op positions per model) stays on the first line
    path.write_text(head + ', "models": {\n' + body + "\n}}\n")


def main() -> None:
    from edgebench.estimate.reference import REFERENCE_OPS_FILE, export_reference_ops, key

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--add-missing", action="store_true",
                        help="export only the (model, size) the file lacks; keep every existing entry as it is")
    args = parser.parse_args()
    wanted = wanted_sizes()
    existing = json.loads(REFERENCE_OPS_FILE.read_text()) if args.add_missing else None
    if existing is not None:
        wanted = [(m, s) for m, s in wanted if key(m, s) not in existing["models"]]
        if not wanted:
            print(f"{REFERENCE_OPS_FILE}: nothing missing")
            return
    with tempfile.TemporaryDirectory() as work:
        data = export_reference_ops(Path(work), wanted)
    write(merged(existing, data) if existing is not None else data, REFERENCE_OPS_FILE)
    print(f"wrote {REFERENCE_OPS_FILE}: " + ", ".join(f"{m}@{s}" for m, s in wanted))


if __name__ == "__main__":
    main()
