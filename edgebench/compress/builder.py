"""From a model spec to stored candidates: the baseline (loaded, or trained and cached), then
every recipe applied to it, each exported to the formats the runtimes load."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgebench.compress import Candidate, Context, instantiate
from edgebench.core.atomic import atomic_path
from edgebench.core.cache import content_key, module_fingerprint, source_digest
from edgebench.core.errors import EdgebenchError, IncompatibleError
from edgebench.core.module_cache import cached_module
from edgebench.core.records import CandidateInfo
from edgebench.core.signing import sign
from edgebench.core.store import RunStore
from edgebench.models.artifact import Artifact
from edgebench.models.data import Dataset
from edgebench.models.export import export_onnx, onnx_to_openvino
from edgebench.models.litert_export import converter_available, export_tflite
from edgebench.models.train import TrainConfig, fit
from edgebench.models.zoo import (
    ModelSource,
    apply_weights,
    build_module,
    cached_pretrained_state,
    count_params_and_macs,
    load_state_dict,
    replace_classifier,
)

Progress = Callable[[str, int, int], None]


@dataclass
class BaselineOptions:
    weights: Optional[str] = None
    pretrained: bool = False
    trust_checkpoint: bool = False
    epochs: float = 2.0
    seed: int = 0
    partial_weights: bool = False


def candidate_id(name: str, lineage: tuple) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "candidate"
    if not lineage:
        return slug
    digest = hashlib.sha256(json.dumps(lineage, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{slug}-{digest}"


def build_baseline(source: ModelSource, dataset: Dataset, opts: BaselineOptions,
                   progress: Optional[Progress] = None) -> Candidate:
    if not source.is_torch:
        return Candidate(name="baseline", module=None, artifacts={"onnx": source.onnx_path})
    import torch

    # Seeded initial weights: they are part of the training cache key, so a rerun in a new process
    # (or after other code drew random numbers) finds the baseline it trained before.
    torch.manual_seed(opts.seed)
    module = build_module(source, dataset.num_classes, dataset.input_size)
    step: dict[str, Any] = {"pass": "baseline", "config": {"model": source.name}}
    if opts.pretrained:
        model = build_module(source, 1000)
        apply_weights(model, cached_pretrained_state(source.name), f"torchvision:{source.name}")
        replace_classifier(model, dataset.num_classes)
        module = model
        step["config"]["init"] = "torchvision-pretrained"
    if opts.weights:
        missing, unexpected = apply_weights(module, load_state_dict(Path(opts.weights), trust=opts.trust_checkpoint),
                                            opts.weights, partial=opts.partial_weights)
        step["config"]["weights"] = Path(opts.weights).name
        notes: tuple = ()
        if missing or unexpected:
            step["config"]["partial_weights"] = f"{len(missing)} missing, {len(unexpected)} unexpected"
            notes = (f"--partial-weights: {len(missing)} tensor(s) not in '{Path(opts.weights).name}' kept their "
                     f"initial values ({', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}); "
                     f"{len(unexpected)} unexpected tensor(s) ignored",)
        _check_outputs(module, dataset)
        return Candidate(name="baseline", module=module.eval(), lineage=(step,), notes=notes)
    _check_outputs(module, dataset)
    config = TrainConfig(epochs=opts.epochs, seed=opts.seed)
    key = content_key("baseline", source.spec, module_fingerprint(module), dataset.fingerprint(), config.as_key(),
                      source_digest("edgebench.models.train"))
    report = (lambda done, total: progress("train baseline", done, total)) if progress else None
    module = cached_module(key, lambda: fit(module, dataset.train, config, progress=report))
    step["config"]["trained"] = {"epochs": opts.epochs, "seed": opts.seed, "data": dataset.name}
    return Candidate(name="baseline", module=module.eval(), lineage=(step,))


def _check_outputs(module, dataset: Dataset) -> None:
    import torch

    with torch.no_grad():
        try:
            out = module.eval()(torch.from_numpy(dataset.eval.x[:2]))
        except (RuntimeError, AssertionError, ValueError) as e:  # ViTs assert their image size
            raise IncompatibleError(f"the model cannot take input of shape {dataset.input_shape}: "
                                    f"{str(e).splitlines()[0][:200]}") from None
    if out.ndim != 2 or out.shape[1] != dataset.num_classes:
        raise IncompatibleError(f"model outputs shape {tuple(out.shape)} but the dataset has {dataset.num_classes} classes")


class CandidateBuilder:
    """Applies recipes to the baseline and stores each resulting candidate with its artifacts.

    Intermediate candidates are shared between recipes with a common prefix, and a candidate
    already in the run folder is not built again (resume).
    """

    def __init__(self, store: RunStore, dataset: Dataset, source: ModelSource, baseline: Candidate,
                 train_epochs: float, seed: int, progress: Optional[Progress] = None, budget: float = 1.0,
                 calibration: Optional[Callable[[int], list]] = None, device=None):
        self.device = device  # the DeviceProfile asked for (None: this machine)
        self.store, self.dataset, self.source, self.baseline = store, dataset, source, baseline
        self.calibration = calibration
        self.train_epochs, self.seed, self.progress, self.budget = train_epochs, seed, progress, budget
        self._built: dict[str, Candidate] = {}
        self._exports: dict[int, dict] = {}

    def context(self, work_dir: Path) -> Context:
        return Context(dataset=self.dataset, baseline=self.baseline, model_source=self.source, work_dir=work_dir,
                       train_epochs=self.train_epochs, seed=self.seed, progress=self.progress,
                       export=self.export_fp32, budget=self.budget, calibration=self.calibration,
                       device=self.device)

    def final_id(self, recipe_name: str, steps: list[dict]) -> str:
        """The id the recipe's candidate is stored under."""
        if not steps:
            return "baseline"
        return candidate_id(recipe_name, self.baseline.lineage + tuple(p.step() for p in instantiate(steps)))

    def build(self, recipe_name: str, steps: list[dict],
              on_pass: Optional[Callable[[str], None]] = None) -> tuple[Optional[CandidateInfo], Optional[str]]:
        """Returns (info, None) when built or found, or (None, reason) when a pass does not apply.
        `on_pass(name)` is called as each pass starts (build_worker.py times passes by it)."""
        passes = instantiate(steps)  # validates every config before any work
        name = "baseline" if not steps else recipe_name
        final_id = self.final_id(recipe_name, steps)
        stored = self.store.load_candidate(final_id)
        if stored:
            return stored, None
        candidate = self.baseline
        for i, p in enumerate(passes):
            prefix = tuple(s for s in steps[: i + 1])
            key = json.dumps(prefix, sort_keys=True, default=str)
            if key in self._built:
                candidate = self._built[key]
                continue
            if on_pass is not None:
                on_pass(p.name)
            reason = p.check(candidate, self.context(self.store.candidate_dir(final_id)))
            if reason:
                return None, reason
            work = self.store.candidate_dir(final_id if i == len(passes) - 1 else f"{final_id}.step{i}")
            candidate = p.apply(candidate, self.context(work))
            self._built[key] = candidate
        candidate.name = name
        if on_pass is not None and passes:
            on_pass("export")  # saving runs the exporters and converters, which can take long too
        return self.save(final_id, candidate), None

    def export_fp32(self, candidate: Candidate) -> dict:
        """FP32 artifacts of a torch candidate (ONNX, and LiteRT where its converter is installed),
        exported once per candidate."""
        if candidate.module is None:
            return dict(candidate.artifacts)
        key = id(candidate.module)
        if key not in self._exports:
            onnx_path = self.store.root / "exports" / module_fingerprint(candidate.module) / "model.onnx"
            if not onnx_path.is_file():
                export_onnx(candidate.module, onnx_path, self.dataset.eval.x[:8])
            self._exports[key] = {"onnx": onnx_path}
            if converter_available():  # LiteRT's artifact, where its converter is installed
                tflite_path = onnx_path.with_name("model.tflite")
                if not tflite_path.is_file():
                    export_tflite(candidate.module, tflite_path, self.dataset.eval.x[:8])
                self._exports[key]["tflite"] = tflite_path
        return self._exports[key]

    def save(self, cid: str, candidate: Candidate) -> CandidateInfo:
        import torch

        folder = self.store.candidate_dir(cid)
        folder.mkdir(parents=True, exist_ok=True)
        artifacts: dict[str, Path] = {}
        params = macs = None
        if candidate.module is not None:
            module = candidate.module.eval()
            with atomic_path(folder / "model.pt") as scratch:
                torch.save(module, str(scratch))
            sign(folder / "model.pt")
            artifacts["torch"] = folder / "model.pt"
            exported = self.export_fp32(candidate)
            artifacts["onnx"] = Artifact(exported["onnx"]).copy_into(folder).path
            if "tflite" in exported:
                artifacts["tflite"] = Artifact(exported["tflite"]).copy_into(folder).path
            params, macs = count_params_and_macs(module, self.dataset.input_shape)
        for fmt, path in candidate.artifacts.items():
            artifacts[fmt] = _adopt(Path(path), folder / fmt)
        notes = list(candidate.notes)
        if "openvino" not in artifacts and "onnx" in artifacts:
            try:
                artifacts["openvino"] = onnx_to_openvino(artifacts["onnx"], folder / "openvino")
            except Exception as e:  # noqa: BLE001 - a third-party graph OpenVINO cannot convert: noted, and
                # the OpenVINO runner then reads the ONNX file itself, so its failure is a failed row with its message
                notes.append(f"openvino IR not made: {first_line(e)}")
        info = CandidateInfo(
            id=cid, name=candidate.name, lineage=tuple(candidate.lineage), parent=candidate.parent,
            params=params, macs=macs,
            artifacts={fmt: str(p.relative_to(self.store.root)) for fmt, p in artifacts.items()},
            file_bytes={fmt: Artifact(p).size_bytes() for fmt, p in artifacts.items()},
            input_shape=tuple(self.dataset.input_shape), num_classes=self.dataset.num_classes,
            precision=candidate.precision, notes=tuple(notes))
        self.store.save_candidate(info)
        return info


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def _adopt(path: Path, target_dir: Path) -> Path:
    """Keep an artifact that already lies in the candidate's folder; copy one from elsewhere
    (an IR's .bin travels with its .xml)."""
    if target_dir.parent.resolve() in path.resolve().parents:
        return path
    return Artifact(path).copy_into(target_dir).path


__all__ = ["BaselineOptions", "CandidateBuilder", "build_baseline", "candidate_id", "EdgebenchError"]
