"""INT8 post-training quantization, once per runtime, calibrated on the calibration split.

- ONNX Runtime: static QDQ quantization (`quantize_static`), after ORT's own pre-processing
  (shape inference and graph optimisation), per-channel weights.
- OpenVINO: NNCF's `quantize` on the OpenVINO model, which inserts FakeQuantize nodes that the
  CPU plugin executes as INT8 kernels.
- LiteRT: ai-edge-quantizer's full-integer recipe (int8 weights, activations, input and output)
  on the FP32 .tflite, where litert-torch made one.
The result is one candidate holding an INT8 artifact per runtime.

Calibration runs in batches of CALIBRATION_BATCH rather than one image at a time (the range
statistics are the same min/max over the same samples; a few large calls cost far less than
hundreds of small ones), on 128 samples by default.

TensorRT builds its INT8 engines from a QDQ ONNX graph like the ONNX Runtime artifact made here;
that path belongs to the TensorRT runner and is not exercised on machines without an NVIDIA GPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.models.export import save_openvino
from edgebench.models.litert_export import quantize_tflite_int8

CALIBRATION_BATCH = 32


class PtqConfig(PassConfig):
    precision: Literal["int8"] = "int8"
    calibration_samples: int = Field(128, ge=1, le=10000)
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    runtimes: tuple[str, ...] = ("onnxruntime", "openvino", "litert")


class PtqPass(Pass):
    name = "ptq"
    Config = PtqConfig
    needs_torch = False

    def check(self, candidate: Candidate, ctx: Context):
        if candidate.precision != "fp32":
            return f"ptq needs an fp32 candidate; '{candidate.name}' is already {candidate.precision}"
        return None

    def label(self) -> str:
        return "ptq-int8"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        fp32 = ctx.export(candidate)
        calib = ctx.dataset.calib.x[: self.config.calibration_samples]
        artifacts = {}
        if "onnxruntime" in self.config.runtimes:
            ctx.report("ptq: onnxruntime", 0, 2)
            artifacts["onnx"] = quantize_onnx(Path(fp32["onnx"]), ctx.work_dir / "model.int8.onnx", calib,
                                              self.config.per_channel, self.config.activation_type)
        if "openvino" in self.config.runtimes:
            ctx.report("ptq: openvino/nncf", 1, 2)
            artifacts["openvino"] = quantize_openvino(Path(fp32["onnx"]), ctx.work_dir / "openvino-int8", calib)
        if "litert" in self.config.runtimes and "tflite" in fp32:  # exported only where litert-torch is installed
            artifacts["tflite"] = quantize_tflite_int8(Path(fp32["tflite"]), ctx.work_dir / "model.int8.tflite", calib)
        ctx.report("ptq", 2, 2)
        return candidate.derive(self, module=None, precision="int8", artifacts=artifacts)


def quantize_onnx(fp32_path: Path, out_path: Path, calib: np.ndarray, per_channel: bool, activation_type: str) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib[i:i + CALIBRATION_BATCH] for i in range(0, len(calib), CALIBRATION_BATCH))

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {"input": batch}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    prepared = out_path.with_name("model.prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    prepared.unlink(missing_ok=True)
    return out_path


def quantize_openvino(fp32_onnx: Path, out_dir: Path, calib: np.ndarray) -> Path:
    import nncf
    import openvino as ov

    model = ov.convert_model(str(fp32_onnx))  # batch axis still dynamic: calibrate on whole batches
    batches = [calib[i:i + CALIBRATION_BATCH] for i in range(0, len(calib), CALIBRATION_BATCH)]
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),  # NNCF counts dataset items (batches)
                              preset=nncf.QuantizationPreset.PERFORMANCE)
    shape = quantized.inputs[0].get_partial_shape()
    shape[0] = 1  # then a static batch of 1, as the FP32 IR has, so the CPU plugin picks its fastest kernels
    quantized.reshape({quantized.inputs[0]: shape})
    return save_openvino(quantized, out_dir)
