"""INT8 simulated in a torch model, for quantization-aware training (the `qat` pass): BatchNorm
folded into the convolutions, then each convolution and linear layer seen through fake-quantized
inputs (uint8, per tensor, moving-average ranges) and weights (int8, per output channel, symmetric).

Kept apart from qat.py because it defines torch modules, so it imports torch when loaded; the
pass imports it only when it runs."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

from edgebench.compress.surgery import replace_module


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
