"""INT8 post-training quantization, once per runtime, calibrated on the calibration split.

- ONNX Runtime: static QDQ quantization (`quantize_static`), after ORT's own pre-processing
  (shape inference and graph optimisation), per-channel weights, every op ORT can quantize.
  Weights are 7-bit (`reduce_range`) when the device the artifact is built for is an x86 CPU
  without VNNI: there ORT's U8S8 kernels add two uint8 x int8 products in a saturating 16-bit
  lane, which cost tiny-cnn ~14 points of top-1 with full-range per-channel weights (ORT's
  quantization docs recommend reduce_range or U8U8 on such CPUs). See `onnx_weight_choice`.
  Speed, from exploratory side-by-side runs on a busy 2-core AVX2 EPYC (not results; the quiet
  figures come from benchmarks/int8_formats.py): at one thread, per-channel 7-bit QDQ was the
  fastest variant tried for mobilenetv3 @64 and resnet18 @224, QOperator about as fast; leaving
  depthwise convolutions in float made mobilenetv3 ~3x slower than quantizing them (a Q/DQ pair
  around each), and quantizing only Conv/Gemm left it no faster than FP32. mobilenetv3's INT8
  graph still has twice FP32's node count (hardswish stays HardSigmoid in float between DQ and Q,
  where FP32 fuses it into the convolution), so with several threads on a loaded machine it
  pays more per-op synchronisation than FP32; whether INT8 pays there is what the benchmark says.
- OpenVINO: NNCF's `quantize` on the OpenVINO model, which inserts FakeQuantize nodes that the
  CPU plugin executes as INT8 kernels.
- LiteRT: ai-edge-quantizer's full-integer recipe (int8 weights, activations, input and output)
  on the FP32 .tflite, where litert-torch made one.
The result is one candidate holding an INT8 artifact per runtime.

Calibration data are *feeds*: {input name: array}, for every input of the model. For a model
edgebench built (its one input named "input", batch axis dynamic) they are the calibration split
in batches of CALIBRATION_BATCH rather than one image at a time (the range statistics are the same
min/max over the same samples; a few large calls cost far less than hundreds of small ones), on
128 samples by default. For any other model (`ctx.calibration`) they come from the user's data,
one feed at the model's own shape, every input by its name.

TensorRT builds its INT8 engines from a QDQ ONNX graph like the ONNX Runtime artifact made here;
that path belongs to the TensorRT runner and is not exercised on machines without an NVIDIA GPU.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field

from edgebench.backends.openvino_runner import reshape_dynamic
from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.core.errors import IncompatibleError, UsageError
from edgebench.devices.host import VNNI_FLAGS, cpu_flags, cpu_model, u8s8_saturates
from edgebench.devices.profiles import DeviceProfile
from edgebench.models.export import INPUT_NAME, save_openvino
from edgebench.models.litert_export import quantize_tflite_int8

CALIBRATION_BATCH = 32
CALIBRATION_FOLD_EVERY = 8  # feeds whose range statistics ORT holds before folding them into the ranges


class PtqConfig(PassConfig):
    precision: Literal["int8"] = "int8"
    calibration_samples: int = Field(128, ge=1, le=10000)
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    # ONNX Runtime's 7-bit weights: "auto" decides by the target device's CPU (onnx_weight_choice)
    reduce_range: Union[Literal["auto"], bool] = "auto"
    runtimes: tuple[str, ...] = ("onnxruntime", "openvino", "litert")


class PtqPass(Pass):
    name = "ptq"
    Config = PtqConfig
    config: PtqConfig
    needs_torch = False

    def check(self, candidate: Candidate, ctx: Context):
        if candidate.precision != "fp32":
            return f"ptq needs an fp32 candidate; '{candidate.name}' is already {candidate.precision}"
        return None

    def label(self) -> str:
        return "ptq-int8"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        if ctx.export is None:
            raise UsageError("ptq needs a context that can export the fp32 candidate (Context.export is None)")
        fp32 = ctx.export(candidate)
        calib = calibration_feeds(ctx, self.config.calibration_samples)
        artifacts, failures = {}, []
        # Each runtime's quantizer on its own: a third-party graph one of them cannot take (an op
        # it does not convert) costs that runtime's INT8 artifact, noted, not the other's.
        notes = []
        if "onnxruntime" in self.config.runtimes:
            ctx.report("ptq: onnxruntime", 0, 2)
            choice = onnx_weight_choice(self.config.reduce_range, ctx.device)
            try:
                artifacts["onnx"] = quantize_onnx(Path(fp32["onnx"]), ctx.work_dir / "model.int8.onnx", calib,
                                                  self.config.per_channel, self.config.activation_type, choice)
                notes.append(choice.note(self.config.per_channel))
            except Exception as e:  # noqa: BLE001 - recorded in the candidate's notes with the message
                failures.append(f"onnxruntime INT8 failed: {_first_line(e)}")
        if "openvino" in self.config.runtimes:
            ctx.report("ptq: openvino/nncf", 1, 2)
            try:
                artifacts["openvino"] = quantize_openvino(Path(fp32["onnx"]), ctx.work_dir / "openvino-int8", calib)
            except Exception as e:  # noqa: BLE001 - recorded in the candidate's notes with the message
                failures.append(f"openvino INT8 failed: {_first_line(e)}")
        if "litert" in self.config.runtimes and "tflite" in fp32:  # exported only where litert-torch is installed
            # The .tflite comes from edgebench's own one-input torch export: its feeds are image batches.
            images = np.concatenate([next(iter(feed.values())) for feed in calib])
            try:
                artifacts["tflite"] = quantize_tflite_int8(Path(fp32["tflite"]), ctx.work_dir / "model.int8.tflite", images)
            except Exception as e:  # noqa: BLE001 - recorded in the candidate's notes with the message
                failures.append(f"litert INT8 failed: {_first_line(e)}")
        ctx.report("ptq", 2, 2)
        if not artifacts:
            raise IncompatibleError("; ".join(failures) or "no runtime to quantize for")
        derived = candidate.derive(self, module=None, precision="int8", artifacts=artifacts)
        derived.notes = tuple(derived.notes) + tuple(notes) + tuple(failures)
        return derived


@dataclass(frozen=True)
class Int8Choice:
    """How ONNX Runtime's INT8 weights were built, for which device, and why; written into the
    artifact's metadata and the candidate's notes."""
    reduce_range: bool
    built_for: str  # the device profile, or "this machine"
    reason: str
    # Full-range weights built for another device, measured here: run them with ORT's exact U8U8
    # kernels (session.x64quantprecision, a no-op where ORT's U8S8 does not saturate), so this
    # machine's accuracy is the target's rather than that of saturated kernels the target lacks.
    precise_on_x86: bool = False

    def metadata(self) -> dict[str, str]:
        return {"edgebench.int8.weights": "7-bit (reduce_range)" if self.reduce_range else "8-bit",
                "edgebench.int8.built_for": self.built_for, "edgebench.int8.reason": self.reason,
                "edgebench.ort.x64quantprecision": "1" if self.precise_on_x86 else "0"}

    def note(self, per_channel: bool) -> str:
        weights = "7-bit (reduce_range)" if self.reduce_range else "8-bit"
        return (f"onnxruntime INT8: QDQ, {'per-channel' if per_channel else 'per-tensor'} {weights} weights, "
                f"built for {self.built_for}: {self.reason}")


def onnx_weight_choice(setting: Union[str, bool], device: Optional[DeviceProfile]) -> Int8Choice:
    """7-bit or 8-bit weights for ONNX Runtime, decided by the CPU of the device the artifact is
    for (`device`; None or a profile that matches this machine: this machine's own flags).

    - x86 without VNNI: 7-bit, which no ORT kernel saturates.
    - Arm, x86 with VNNI, or a device whose ONNX Runtime runs on a GPU/NPU only: 8-bit (one more
      bit of weight precision, where nothing saturates). Built here for such a device, the artifact
      asks the ORT runner for U8U8 kernels so that this machine does not saturate what the target would not.
    - A device profile that does not state its CPU's instruction set: 7-bit, right on every CPU.
    """
    if device is None or device.matches_this_machine():
        flags, machine = cpu_flags(), platform.machine()
        target = f"this machine ({cpu_model()})"
        saturates = u8s8_saturates(flags, machine)
        why = ("x86 without VNNI, whose U8S8 kernels saturate 16-bit pair sums" if saturates
               else f"{machine}{' with VNNI' if flags & VNNI_FLAGS else ''}: "
                    "no U8S8 saturation")
        return _decided(setting, target, why, saturates, precise=False)
    cpu = device.processors.get("cpu")
    if cpu is None or "onnxruntime" not in cpu.runtimes:
        return _decided(setting, device.name, "its ONNX Runtime runs on a GPU/NPU, not on an x86 CPU without VNNI",
                        False, precise=True)
    if not cpu.isa:
        return _decided(setting, device.name, "its profile does not state its CPU's instruction set; "
                        "7-bit weights saturate on none", True, precise=True)
    saturates = u8s8_saturates(set(cpu.isa[1:]), cpu.isa[0])
    why = (f"its CPU ({cpu.name}) is x86 without VNNI, whose U8S8 kernels saturate" if saturates
           else f"its CPU ({cpu.name}, {', '.join(cpu.isa)}) does not saturate U8S8")
    return _decided(setting, device.name, why, saturates, precise=True)


def _decided(setting, target: str, why: str, saturates: bool, precise: bool) -> Int8Choice:
    if setting != "auto":
        return Int8Choice(bool(setting), target, f"reduce_range={setting} as configured ({why})",
                          precise and not setting)
    return Int8Choice(saturates, target, why, precise and not saturates)


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def calibration_feeds(ctx: Context, samples: int) -> list[dict[str, np.ndarray]]:
    if ctx.calibration is not None:
        return ctx.calibration(samples)
    return as_feeds(ctx.dataset.calib.x[:samples])


def as_feeds(calib) -> list[dict[str, np.ndarray]]:
    """Feeds as given, or an array of images for edgebench's own one-input export, in batches."""
    if isinstance(calib, np.ndarray):
        return [{INPUT_NAME: calib[i:i + CALIBRATION_BATCH]} for i in range(0, len(calib), CALIBRATION_BATCH)]
    return list(calib)


def quantize_onnx(fp32_path: Path, out_path: Path, calib, per_channel: bool, activation_type: str,
                  choice: Optional[Int8Choice] = None, quant_format: Literal["qdq", "qoperator"] = "qdq") -> Path:
    """`calib`: feeds ({input name: array}) or an array of images (see `as_feeds`); `choice`: the
    weights' range and target (None: decided for this machine); `quant_format`: QDQ (what every
    runtime reads, TensorRT included) or ORT's own QOperator ops (benchmarks/int8_formats.py)."""
    calib = as_feeds(calib)
    choice = choice or onnx_weight_choice("auto", None)
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        """Hands ORT the feeds CALIBRATION_FOLD_EVERY at a time (its `CalibStridedMinMax`): after each
        stride ORT folds the stride's ranges into the running min/max and frees them, so every feed
        counts and memory holds one stride's statistics at a time."""

        def __init__(self):
            self._feeds, self._at, self._end = calib, 0, len(calib)

        def __len__(self):
            # ORT refuses a length its stride does not divide; rounded up, the last stride's range
            # is cut at the real end by set_range, so it simply holds fewer feeds.
            return -(-len(self._feeds) // CALIBRATION_FOLD_EVERY) * CALIBRATION_FOLD_EVERY

        def set_range(self, start_index, end_index):
            self._at, self._end = start_index, min(end_index, len(self._feeds))

        def get_next(self):
            if self._at >= self._end:
                return None
            self._at += 1
            return self._feeds[self._at - 1]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    prepared = out_path.with_name("model.prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out_path), Reader(), per_channel=per_channel,
                    quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, reduce_range=choice.reduce_range,
                    # Not CalibMaxIntermediateOutputs: ORT empties its list of per-feed statistics when
                    # it reaches that size without folding them into the ranges, so all but the last
                    # partial group of feeds would be thrown away (tests/test_ptq_calibration.py).
                    extra_options={"CalibStridedMinMax": CALIBRATION_FOLD_EVERY})
    prepared.unlink(missing_ok=True)
    model = onnx.load(str(out_path))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **choice.metadata()})
    onnx.save(model, str(out_path))
    return out_path


def quantize_openvino(fp32_onnx: Path, out_dir: Path, calib) -> Path:
    calib = as_feeds(calib)
    import nncf
    import openvino as ov

    model = ov.convert_model(str(fp32_onnx))  # batch axis still dynamic: calibrate on whole batches
    quantized = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib),  # NNCF counts dataset items (feeds)
                              preset=nncf.QuantizationPreset.PERFORMANCE)
    # Then a static batch of 1, as the FP32 IR has, so the CPU plugin picks its fastest kernels;
    # other dynamic dims stay, and the runner fixes them at the shapes measured.
    reshape_dynamic(quantized, {}, batch_size=1)
    return save_openvino(quantized, out_dir)
