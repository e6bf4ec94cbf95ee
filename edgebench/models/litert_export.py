"""torch -> LiteRT (.tflite) with litert-torch, Google's maintained converter (no TensorFlow), and
its INT8 full-integer variant with ai-edge-quantizer, calibrated on the calibration split.

Both are optional (`pip install 'edgebench[litert-convert]'`): without them a candidate simply has
no `tflite` artifact and the LiteRT runner is not planned for it. Every FP32 conversion is checked
against torch on real inputs, as the ONNX export is.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from edgebench.core.atomic import atomic_path
from edgebench.core.errors import IncompatibleError

CONVERT_EXTRA = "edgebench[litert-convert]"


def converter_available() -> bool:
    """Whether litert-torch and ai-edge-quantizer are importable (checked without importing them)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_quantizer"))
    except ImportError:  # a finder that refuses the module outright
        return False


def export_tflite(model, path: Path, sample: np.ndarray, rtol: float = 1e-3, atol: float = 1e-4) -> Path:
    """Convert with a static batch of 1 (the worker times single images) and verify against torch."""
    import litert_torch
    import torch

    model = model.eval()
    example = (torch.from_numpy(np.ascontiguousarray(sample[:1])),)
    with atomic_path(path, suffix=".tflite") as scratch:
        litert_torch.convert(model, example).export(str(scratch))
        _check_matches_torch(model, scratch, sample, rtol, atol)
    return path


def quantize_tflite_int8(fp32_path: Path, out_path: Path, calib: np.ndarray) -> Path:
    """Full-integer INT8 (int8 weights and activations, int8 input and output tensors), with
    activation ranges calibrated on `calib`, one image at a time as the model's batch is 1."""
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(fp32_path), recipe.static_wi8_ai8())
    signature, input_name = _signature_input(fp32_path)
    samples = [{input_name: np.ascontiguousarray(calib[i:i + 1])} for i in range(len(calib))]
    result = qt.calibrate({signature: samples})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path, suffix=".tflite") as scratch:
        qt.quantize(result).export_model(str(scratch), overwrite=True)
    return out_path


def _signature_input(path: Path) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    name, io = next(iter(signatures.items()))
    return name, io["inputs"][0]


def _check_matches_torch(model, path: Path, sample: np.ndarray, rtol: float, atol: float) -> None:
    import torch
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    worst, scale = 0.0, 1e-12
    for i in range(min(len(sample), 4)):
        x = np.ascontiguousarray(sample[i:i + 1])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(out["index"])
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        scale = max(scale, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > atol + rtol * scale:
        raise IncompatibleError(f"LiteRT conversion of {path.stem} differs from torch by {worst:.3g} "
                                f"(allowed {atol + rtol * scale:.3g})")
