"""Quantization-aware training: fine-tune under simulated INT8, then convert with each runtime's
own INT8 tool-chain (the `ptq` pass), so the artifacts are the fast QDQ / FakeQuantize graphs those
runtimes already run well.

The simulation matches what the runtimes deploy: BatchNorm is folded into the convolutions first
(as ONNX Runtime and OpenVINO fold it), weights are fake-quantized per output channel, symmetric
int8, and the inputs of every convolution and linear layer per tensor, uint8 with moving-average
min/max ranges (torch.ao's FakeQuantize). After training the fake-quantizers are removed and the
tuned float weights go through calibrated PTQ; the network has learnt to tolerate the rounding.

NNCF's own torch QAT was the first choice, but it compiles a C++ extension at first use, which
timed out on the 2-core machine it was tried on; torch.ao's FakeQuantize needs no build step.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.ptq import PtqPass
from edgebench.compress.surgery import replace_module
from edgebench.core.cache import module_fingerprint

RECOVERY_EPOCHS = 0.5
QAT_LR = 2e-4  # small: QAT refines a trained model, it does not retrain it


class FakeQuantLayer(nn.Module):
    """A conv or linear layer seen through INT8: quantized input and per-channel weights."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.input_fq = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                     dtype=torch.quint8, qscheme=torch.per_tensor_affine)

    def quantized_weight(self):
        w = self.layer.weight
        dims = tuple(range(1, w.ndim))
        scale = (w.detach().abs().amax(dim=dims) / 127.0).clamp_min(1e-8)
        zero = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)

    def forward(self, x):
        x = self.input_fq(x)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.quantized_weight(), self.layer.bias)
        return self.layer._conv_forward(x, self.quantized_weight(), self.layer.bias)


def fold_batchnorm(model):
    """Fold BatchNorm into the preceding convolutions (torch.fx); the model unchanged if it cannot be traced."""
    from torch.fx.experimental.optimization import fuse
    from torch.fx.proxy import TraceError

    try:
        return fuse(model.eval()), True
    except (TraceError, NotImplementedError, RuntimeError):  # fx: control flow on tensors, len()/iter() of a proxy: run unfused
        return model, False


def insert_fake_quant(model) -> list[str]:
    # Exact types: MultiheadAttention reads its out_proj's (a Linear subclass) weight directly,
    # so wrapping it breaks attention; it stays in float.
    names = [n for n, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]
    for name in names:
        replace_module(model, name, FakeQuantLayer(model.get_submodule(name)))
    return names


def strip_fake_quant(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, FakeQuantLayer):
            replace_module(model, name, module.layer)
    return model


class QatConfig(PassConfig):
    epochs: Optional[float] = Field(None, ge=0)  # default 0.5 x budget
    lr: float = Field(QAT_LR, gt=0)
    calibration_samples: int = Field(128, ge=1)
    runtimes: tuple[str, ...] = ("onnxruntime", "openvino")


class QatPass(Pass):
    name = "qat"
    Config = QatConfig
    config: QatConfig

    def check(self, candidate: Candidate, ctx: Context):
        reason = super().check(candidate, ctx)
        if reason:
            return reason
        if candidate.precision != "fp32":
            return f"qat needs an fp32 candidate; '{candidate.name}' is already {candidate.precision}"
        return None

    def label(self) -> str:
        return "qat-int8"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        parent = candidate.module.eval()
        folded, was_folded = fold_batchnorm(copy.deepcopy(parent))
        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)

        def train_under_int8(module):
            insert_fake_quant(module)
            return finetune(module, ctx, "qat: fine-tune with fake INT8", epochs,
                            ("qat", self.config.model_dump(), module_fingerprint(parent)), lr=self.config.lr)

        tuned = strip_fake_quant(copy.deepcopy(train_under_int8(folded)))
        float_tuned = dataclasses.replace(candidate, module=tuned)  # what PTQ quantizes; not a candidate itself
        ptq = PtqPass({"calibration_samples": self.config.calibration_samples, "runtimes": self.config.runtimes})
        quantized = ptq.apply(float_tuned, ctx)
        note = (f"QAT: {epochs:g} epochs with fake INT8 (per-channel s8 weights, u8 inputs"
                f"{', BatchNorm folded' if was_folded else ', BatchNorm not folded (fx trace failed)'}), "
                f"then the runtimes' INT8 conversion")
        return candidate.derive(self, module=None, precision="int8", artifacts=quantized.artifacts,
                                notes=candidate.notes + (note,))
