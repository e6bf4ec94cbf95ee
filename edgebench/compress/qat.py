"""Quantization-aware training: fine-tune under simulated INT8, then convert with each runtime's
own INT8 tool-chain (the `ptq` pass), so the artifacts are the fast QDQ / FakeQuantize graphs those
runtimes already run well.

The simulation matches what the runtimes deploy: BatchNorm is folded into the convolutions first
(as ONNX Runtime and OpenVINO fold it), weights are fake-quantized per output channel, symmetric
int8, and the inputs of every convolution and linear layer per tensor, uint8 with moving-average
min/max ranges (torch.ao's FakeQuantize). After training the fake-quantizers are removed and the
tuned float weights go through calibrated PTQ; the network has learnt to tolerate the rounding.
The simulation itself is in fake_quant.py.

NNCF's own torch QAT was the first choice, but it compiles a C++ extension at first use, which
timed out on the 2-core machine it was tried on; torch.ao's FakeQuantize needs no build step.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Optional

from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.ptq import PtqPass
from edgebench.core.cache import module_fingerprint

RECOVERY_EPOCHS = 0.5
QAT_LR = 2e-4  # small: QAT refines a trained model, it does not retrain it


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
        # Imported here, not at the top: fake_quant defines torch modules, and the CLI must not load
        # torch to parse a recipe or report a bad argument.
        from edgebench.compress.fake_quant import fold_batchnorm, insert_fake_quant, strip_fake_quant

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


def __getattr__(name: str):
    """`FakeQuantLayer` at its old address: models saved before it moved to edgebench.compress.fake_quant (a
    resumed run's model.pt, a cache entry) name it here when unpickled."""
    if name == "FakeQuantLayer":
        from edgebench.compress.fake_quant import FakeQuantLayer
        return FakeQuantLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
