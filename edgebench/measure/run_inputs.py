"""A run's inputs: the shape sets it measures, the evaluation data stored for each, how quality
is judged, and the calibration feeds for INT8.

Two kinds of model arrive:

- a classifier edgebench builds and trains on a built-in dataset (a registered name or a torch
  `module:factory`): one shape set, the dataset's eval split with its labels, quality is top-1;
- any ONNX file: its declared inputs resolved into shape sets (models/inputs.py), evaluation
  feeds drawn from `--data` (models/input_data.py) and capped (measure/eval_sets.py), and quality
  is agreement with the FP32 reference on those feeds (or a user metric; or, for synthetic data,
  not measured, and said so). Labels of the built-in data are never used for such a model: it
  was not trained on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgebench.measure.eval_sets import write_eval_set, write_labelled_eval_set, write_reference
from edgebench.models.input_data import Preprocess, feeds, measures_quality
from edgebench.models.inputs import InputSpec, parse_input_shapes, resolve_input_specs, samples_bytes, shape_label
from edgebench.models.onnx_io import declared_inputs

CALIBRATION_MAX_BYTES = 256 * 2 ** 20


@dataclass
class ShapeSet:
    label: Optional[str]  # recorded on measurements and in keys; None for a built-in classifier run
    specs: list[InputSpec]
    eval_path: Path
    eval_info: dict = field(default_factory=dict)
    reference: Optional[Path] = None

    @property
    def input_shapes(self) -> dict:
        return {s.name: list(s.shape) for s in self.specs}


@dataclass
class RunInputs:
    sets: list[ShapeSet]
    data: str
    labelled: bool = False  # top-1 on labels made for this model
    metric: Optional[str] = None
    quality_note: Optional[str] = None  # why quality is not measured
    preprocess: Preprocess = field(default_factory=Preprocess)
    seed: int = 0

    def calibration(self, count: int) -> list[dict]:
        """Up to `count` feeds at the first shape set (the model's own batch), within a memory cap."""
        specs = self.sets[0].specs
        count = max(1, min(count, CALIBRATION_MAX_BYTES // max(1, samples_bytes(specs))))
        return list(feeds(self.data, specs, count, self.preprocess, self.seed + 1))

    def quality_description(self) -> str:
        if self.quality_note:
            return f"not measured: {self.quality_note}"
        if self.labelled:
            return f"top-1 accuracy on {self.data} labels"
        if self.metric:
            return f"user metric {self.metric}"
        return "agreement with the FP32 reference (cosine similarity of the first output)"

    def describe(self) -> dict:
        return {"data": self.data, "quality": self.quality_description(),
                "preprocess": self.preprocess.describe() if any(s.is_image for s in self.sets[0].specs) else None,
                "shape_sets": [{"label": s.label, "inputs": [sp.to_dict() for sp in s.specs],
                                "eval_samples": s.eval_info.get("samples"), "eval_bytes": s.eval_info.get("bytes")}
                               for s in self.sets]}

    def add_references(self, baseline_onnx: Path, threads: Optional[int] = None) -> None:
        """FP32 reference outputs per shape set, where quality is agreement."""
        if self.labelled or self.quality_note or self.metric:
            return
        for s in self.sets:
            s.reference = write_reference(baseline_onnx, s.eval_path, s.eval_path.with_name(
                s.eval_path.stem.replace("eval", "reference") + ".npz"), threads)


def labelled_inputs(data_dir: Path, dataset) -> RunInputs:
    """A built-in classifier run: the eval split and its labels under the exported input name."""
    path = data_dir / "eval.npz"
    spec = InputSpec("input", dataset.input_shape, "float32", "NCHW")
    info = write_labelled_eval_set(path, "input", dataset.eval.x, dataset.eval.y)
    return RunInputs([ShapeSet(None, [spec], path, info)], dataset.name, labelled=True)


def onnx_inputs(onnx_path: Path, data_dir: Path, data: str, input_shapes: list[str], input_size: Optional[int],
                preprocess: Preprocess, metric: Optional[str] = None, seed: int = 0,
                layouts: Optional[dict] = None) -> RunInputs:
    """Shape sets of an ONNX model and their stored evaluation feeds."""
    sets = resolve_input_specs(declared_inputs(onnx_path), parse_input_shapes(input_shapes), input_size, layouts)
    note = None if measures_quality(data) else f"inputs are synthetic (--data {data}); latency only"
    out = []
    for i, specs in enumerate(sets):
        path = data_dir / f"eval-{i}.npz"
        info = write_eval_set(path, specs, data, preprocess, seed)
        out.append(ShapeSet(shape_label(specs), specs, path, info))
    return RunInputs(out, data, metric=metric, quality_note=note, preprocess=preprocess, seed=seed)

