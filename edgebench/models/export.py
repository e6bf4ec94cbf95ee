"""Turn a torch module into deployable artifacts: ONNX, then OpenVINO IR from that ONNX.

Every ONNX export is checked against torch on real inputs before it is used, so a silently wrong
export cannot produce a fast-but-wrong candidate.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgebench.core.atomic import atomic_path
from edgebench.core.errors import IncompatibleError

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"
SINGLE_FILE_BYTES = 1_800_000_000  # protobuf's 2 GB limit on one ONNX file, less room for the graph


def export_onnx(model, path: Path, sample: np.ndarray, rtol: float = 1e-3, atol: float = 1e-4) -> Path:
    """Export with a dynamic batch axis and verify the outputs against torch on `sample`."""
    model = model.eval()
    with atomic_path(path) as scratch:  # a killed or failed export leaves no valid-looking file
        _export(model, scratch, sample, rtol, atol)
    return path


def _export(model, path: Path, sample: np.ndarray, rtol: float, atol: float) -> None:
    import torch

    example = torch.from_numpy(sample[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except Exception:  # noqa: BLE001 - any tracer failure falls back to torch.export, whose own errors propagate
            # Models the TorchScript tracer cannot follow (AlexNet's adaptive pooling up to 6x6 at
            # 64 px) go through torch.export instead. Its weights go in the one file, as the
            # tracer's do, where protobuf allows (under 2 GB): an external .onnx.data file is lost
            # by ONNX Runtime's quantization pre-processing (its optimised copy points at it from
            # a temporary folder) and by every copy of model.onnx alone.
            small = sum(t.numel() * t.element_size() for t in model.state_dict().values()) < SINGLE_FILE_BYTES
            torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=18,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=not small,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    check_onnx_matches_torch(model, path, sample, rtol, atol)


def check_onnx_matches_torch(model, path: Path, sample: np.ndarray, rtol: float, atol: float) -> None:
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(torch.from_numpy(sample)).numpy()
    got = session.run(None, {session.get_inputs()[0].name: sample})[0]
    scale = np.abs(expected).max() + 1e-12
    worst = float(np.abs(got - expected).max())
    if worst > atol + rtol * scale:
        raise IncompatibleError(
            f"ONNX export of {path.stem} differs from torch by {worst:.3g} (allowed {atol + rtol * scale:.3g})")


def onnx_to_openvino(onnx_path: Path, out_dir: Path, batch: int = 1) -> Path:
    """Convert to OpenVINO IR with a static batch (static shapes let the CPU plugin pick faster kernels)."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    new = {}
    for port in model.inputs:  # a dynamic leading (batch) dim only; other dynamic dims are fixed at load
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() > 0 and shape[0].is_dynamic:
            shape[0] = batch
            new[port] = shape
    if new:
        model.reshape(new)
    return save_openvino(model, out_dir)


def save_openvino(model, out_dir: Path) -> Path:
    """Write model.xml/.bin into a scratch folder and rename it into place, so a kill mid-write
    never leaves an IR whose .xml and .bin disagree."""
    import openvino as ov

    with atomic_path(out_dir) as scratch:
        scratch.mkdir()
        ov.save_model(model, str(scratch / "model.xml"), compress_to_fp16=False)
    return out_dir / "model.xml"
