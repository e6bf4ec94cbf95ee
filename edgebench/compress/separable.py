"""Depthwise-separable rewrite: a standard KxK convolution (groups=1, K>1) becomes a depthwise KxK
convolution followed by a pointwise 1x1, initialised from the original weights, then recovered by
fine-tuning (by default distilling from the model before the rewrite).

Initialisation is the least-squares optimum: for each input channel i the original filters
W[:, i] form an (out x K*K) matrix, and a depthwise-separable pair with depth multiplier m can
represent exactly its rank-m approximations, so the truncated SVD of that matrix gives the
depthwise kernels (right singular vectors) and the pointwise weights (left ones, scaled). With
m = K*K (or m >= min(out, K*K)) the rewrite is exact.
"""
from __future__ import annotations

import copy
from typing import Optional

from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.distill import kd_recovery
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.layer_cost import layer_shapes, model_cost, rewrite_saving
from edgebench.compress.surgery import check_layer_names, classifier_layers, replace_module, short_list
from edgebench.compress.transfer_set import record_transfer, recovery_transfer, taught_on
from edgebench.core.cache import module_fingerprint

# 0.5 left resnet18, rewritten to 13% of its MACs, 2.7 +- 1.0 points below its baseline; 3 brought
# it to 0.6 +- 0.6 (3 seeds, benchmarks/results/separable_levers.md).
RECOVERY_EPOCHS = 3.0


class SeparableConfig(PassConfig):
    depth_multiplier: int = Field(1, ge=1)  # depthwise channels per input channel (= rank of the fit)
    layers: Optional[list[str]] = None  # only these convolutions (default: every eligible one)
    exclude: list[str] = Field(default_factory=list)
    min_macs_saving: float = Field(0.25, ge=0, lt=1)  # rewrite a layer only if it saves at least this fraction
    min_cost_saving: float = Field(0.25, ge=-1, lt=1)  # ... and its estimated cost (layer_cost.py) by this much
    min_model_saving: float = Field(0.05, ge=-1, lt=1)  # decline unless the model's estimated cost falls this much
    epochs: Optional[float] = Field(None, ge=0)
    distill: bool = True


def eligible(conv, depth_multiplier: int) -> bool:
    from torch import nn

    return (isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.kernel_size[0] * conv.kernel_size[1] > 1
            and conv.padding_mode == "zeros")


def macs_ratio(conv, m: int) -> float:
    """MACs of the separable pair over the original's, per output position."""
    k = conv.kernel_size[0] * conv.kernel_size[1]
    cin, cout = conv.in_channels, conv.out_channels
    return (cin * m * k + cin * m * cout) / (cin * cout * k)


def separable_pair(conv, m: int):
    """nn.Sequential(depthwise, pointwise) whose composition best fits `conv` in least squares."""
    import torch
    from torch import nn

    cout, cin, kh, kw = conv.weight.shape
    w = conv.weight.detach().permute(1, 0, 2, 3).reshape(cin, cout, kh * kw)  # per input channel: out x K*K
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # cin x cout x r, cin x r, cin x r x K*K
    rank = min(m, s.shape[1])
    depthwise = nn.Conv2d(cin, cin * m, (kh, kw), stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                          groups=cin, bias=False)
    pointwise = nn.Conv2d(cin * m, cout, 1, bias=conv.bias is not None)
    dw = torch.zeros(cin, m, kh * kw)
    pw = torch.zeros(cout, cin, m)
    dw[:, :rank] = vh[:, :rank]
    pw[:, :, :rank] = (u[:, :, :rank] * s[:, None, :rank]).permute(1, 0, 2)
    with torch.no_grad():
        depthwise.weight.copy_(dw.reshape(cin * m, 1, kh, kw))
        pointwise.weight.copy_(pw.reshape(cout, cin * m, 1, 1))
        if conv.bias is not None and pointwise.bias is not None:  # pointwise has a bias exactly when conv does
            pointwise.bias.copy_(conv.bias.detach())
    return nn.Sequential(depthwise, pointwise)


class SeparablePass(Pass):
    name = "separable"
    Config = SeparableConfig
    config: SeparableConfig

    def targets(self, model, sample=None) -> list[str]:
        """Eligible layers whose rewrite saves MACs and, given a sample input, estimated cost."""
        return self.plan(model, sample)[0]

    def plan(self, model, sample=None) -> tuple[list[str], str]:
        """(layers to rewrite, why there are none). With a sample input, a layer is kept only where
        the cost model (layer_cost.py) says the pair is cheaper by `min_cost_saving`, and the whole
        rewrite only if it saves `min_model_saving` of the model's estimated cost."""
        protected = {id(m) for m in classifier_layers(model)}
        wanted = set(self.config.layers) if self.config.layers is not None else None
        names = []
        for name, module in model.named_modules():
            if not eligible(module, self.config.depth_multiplier) or id(module) in protected:
                continue
            if (wanted is not None and name not in wanted) or name in self.config.exclude:
                continue
            if 1 - macs_ratio(module, self.config.depth_multiplier) < self.config.min_macs_saving:
                continue
            names.append(name)
        if not names:
            return [], (f"has no standard KxK convolution (groups=1, K>1) whose rewrite saves "
                        f"{self.config.min_macs_saving:.0%} of its MACs (its convolutions are depthwise or 1x1)")
        if sample is None:
            return names, ""
        shapes = layer_shapes(model, sample)
        total = model_cost(model, shapes)
        savings = {n: rewrite_saving(model.get_submodule(n),
                                     separable_pair(model.get_submodule(n), self.config.depth_multiplier), shapes[n],
                                     total) for n in names if n in shapes}
        paying = [n for n, s in savings.items() if s.layer >= self.config.min_cost_saving]
        model_saving = sum(savings[n].model for n in paying)
        if not paying:
            best = max(savings, key=lambda n: savings[n].layer)
            return [], (f"no rewrite is estimated to pay: the best, {best}, saves {savings[best].layer:.0%} of its "
                        f"cost (needs {self.config.min_cost_saving:.0%}; depthwise layers run less efficiently "
                        f"and each extra operator costs a dispatch)")
        if model_saving < self.config.min_model_saving:
            return [], (f"rewriting {short_list(paying, 3)} saves an estimated {model_saving:.1%} of the model's "
                        f"cost (needs {self.config.min_model_saving:.0%}): the convolutions that would pay are a "
                        f"small share of the model")
        return paying, ""

    def validate(self, model, dataset) -> None:
        check_layer_names(model, list(self.config.layers or []) + self.config.exclude, "separable")

    def check(self, candidate: Candidate, ctx: Context):
        reason = super().check(candidate, ctx)
        if reason:
            return reason
        names, why = self.plan(candidate.module, _sample(ctx))
        return None if names else f"separable: '{candidate.name}' {why}"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        parent = candidate.module.eval()
        model = copy.deepcopy(parent)
        names = self.targets(model, _sample(ctx))
        for name in names:
            replace_module(model, name, separable_pair(model.get_submodule(name), self.config.depth_multiplier))
        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
        factory = kd_recovery(parent, ctx) if self.config.distill else None
        transfer = recovery_transfer(ctx, self.config.distill)
        module = finetune(model, ctx, "separable: fine-tune", epochs,
                          ("separable", self.config.model_dump(), module_fingerprint(parent)), loss_factory=factory,
                          transfer=transfer)
        shown = short_list(names)
        note = (f"depthwise-separable rewrite of {len(names)} convolution(s): {shown}; {epochs:g} epochs recovery"
                f"{taught_on(transfer)}")
        derived = candidate.derive(self, module=module, notes=candidate.notes + (note,))
        return record_transfer(derived, transfer, parent, ctx)


def _sample(ctx: Context):
    import torch

    return torch.from_numpy(ctx.dataset.train.x[:1])
