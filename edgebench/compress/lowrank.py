"""Low-rank factorisation: truncated SVD of linear layers (W ~ U_r S_r V_r^T as two Linears) and,
for KxK convolutions, either spatial SVD (Jaderberg et al. 2014, scheme 2: a Kx1 convolution into
r channels then a 1xK one) or Tucker-2 (Kim et al. 2016: 1x1 into r_in channels, a KxK core
r_in -> r_out, 1x1 out), ranks set by a ratio of the full rank or by the fraction of the squared
singular values (energy) kept. A layer is factorised only where that removes parameters and the
cost model (layer_cost.py) says it is cheaper to run; the pass declines when the whole model
would not get measurably cheaper. The classifier is left alone. Then a short recovery fine-tune,
by default distilling from the parent.

Tucker-2 is the truncated higher-order SVD of the two channel modes, written with torch's SVD:
tensorly's partial_tucker would refine it by alternating least squares, which the recovery
fine-tune does anyway, so the dependency would buy little.
"""
from __future__ import annotations

import copy
from typing import Literal, Optional

from pydantic import Field, model_validator

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.distill import kd_recovery
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.layer_cost import layer_shapes, model_cost, rewrite_saving
from edgebench.compress.surgery import check_layer_names, classifier_layers, replace_module, short_list
from edgebench.compress.transfer_set import record_transfer, recovery_transfer, taught_on
from edgebench.core.cache import module_fingerprint

RECOVERY_EPOCHS = 0.5
_ALL_KINDS: list[Literal["linear", "conv"]] = ["linear", "conv"]


class LowRankConfig(PassConfig):
    rank_ratio: Optional[float] = Field(None, gt=0, lt=1)  # rank = ratio x full rank
    energy: Optional[float] = Field(None, gt=0, lt=1)  # smallest rank keeping this share of sum(s^2)
    kinds: list[Literal["linear", "conv"]] = Field(default_factory=lambda: _ALL_KINDS.copy())
    conv_method: Literal["spatial-svd", "tucker2"] = "spatial-svd"
    min_cost_saving: float = Field(0.25, ge=-1, lt=1)  # factorise a layer only if its estimated cost falls this much
    min_model_saving: float = Field(0.05, ge=-1, lt=1)  # decline unless the model's estimated cost falls this much
    exclude: list[str] = Field(default_factory=list)
    epochs: Optional[float] = Field(None, ge=0)
    distill: bool = True

    @model_validator(mode="after")
    def _one_rule(self):
        if self.rank_ratio is not None and self.energy is not None:
            raise ValueError("give rank_ratio or energy, not both")
        if self.rank_ratio is None and self.energy is None:
            self.energy = 0.9
        return self


def choose_rank(s, rank_ratio: Optional[float], energy: Optional[float]) -> int:
    import torch

    if rank_ratio is not None:
        return max(1, int(round(rank_ratio * len(s))))
    share = torch.cumsum(s ** 2, 0) / (s ** 2).sum()
    return int(torch.searchsorted(share, torch.tensor(energy)).item()) + 1


def factorise_linear(layer, rank_ratio, energy):
    """Two Linears (in -> r -> out), or None where that would not save parameters."""
    import torch
    from torch import nn

    w = layer.weight.detach()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    r = choose_rank(s, rank_ratio, energy)
    if r * (w.shape[0] + w.shape[1]) >= w.numel():
        return None
    first, second = nn.Linear(w.shape[1], r, bias=False), nn.Linear(r, w.shape[0], bias=layer.bias is not None)
    root = s[:r].sqrt()
    with torch.no_grad():
        first.weight.copy_(root[:, None] * vh[:r])
        second.weight.copy_(u[:, :r] * root[None, :])
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    return nn.Sequential(first, second)


def factorise_conv(conv, rank_ratio, energy):
    """Kx1 conv (cin -> r) then 1xK conv (r -> cout), or None where it would not save parameters."""
    import torch
    from torch import nn

    if not (isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.kernel_size[0] > 1 and conv.kernel_size[1] > 1
            and conv.padding_mode == "zeros"):
        return None
    cout, cin, kh, kw = conv.weight.shape
    # W[o, i, y, x] as a (cin*kh) x (cout*kw) matrix: rows index the vertical filter, columns the horizontal.
    mat = conv.weight.detach().permute(1, 2, 0, 3).reshape(cin * kh, cout * kw)
    u, s, vh = torch.linalg.svd(mat, full_matrices=False)
    r = choose_rank(s, rank_ratio, energy)
    if r * (cin * kh + cout * kw) >= conv.weight.numel():
        return None
    root = s[:r].sqrt()
    vertical = nn.Conv2d(cin, r, (kh, 1), stride=(conv.stride[0], 1), padding=(conv.padding[0], 0),
                         dilation=(conv.dilation[0], 1), bias=False)
    horizontal = nn.Conv2d(r, cout, (1, kw), stride=(1, conv.stride[1]), padding=(0, conv.padding[1]),
                           dilation=(1, conv.dilation[1]), bias=conv.bias is not None)
    with torch.no_grad():
        vertical.weight.copy_((u[:, :r] * root).t().reshape(r, cin, kh, 1))
        horizontal.weight.copy_((root[:, None] * vh[:r]).reshape(r, cout, kw).permute(1, 0, 2).reshape(cout, r, 1, kw))
        if conv.bias is not None:
            horizontal.bias.copy_(conv.bias.detach())
    return nn.Sequential(vertical, horizontal)


def factorise_tucker2(conv, rank_ratio, energy):
    """1x1 (cin -> r_in), KxK core (r_in -> r_out), 1x1 (r_out -> cout) from the truncated HOSVD of
    the output- and input-channel modes, or None where it would not save parameters."""
    import torch
    from torch import nn

    if not (isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.kernel_size[0] * conv.kernel_size[1] > 1
            and conv.padding_mode == "zeros"):
        return None
    w = conv.weight.detach()
    cout, cin, kh, kw = w.shape
    u_out, s_out, _ = torch.linalg.svd(w.reshape(cout, -1), full_matrices=False)
    u_in, s_in, _ = torch.linalg.svd(w.permute(1, 0, 2, 3).reshape(cin, -1), full_matrices=False)
    r_out, r_in = choose_rank(s_out, rank_ratio, energy), choose_rank(s_in, rank_ratio, energy)
    if cin * r_in + r_in * r_out * kh * kw + r_out * cout >= w.numel():
        return None
    u_out, u_in = u_out[:, :r_out], u_in[:, :r_in]
    core = torch.einsum("oiyx,oa,ib->abyx", w, u_out, u_in)
    first = nn.Conv2d(cin, r_in, 1, bias=False)
    middle = nn.Conv2d(r_in, r_out, (kh, kw), stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                       bias=False)
    last = nn.Conv2d(r_out, cout, 1, bias=conv.bias is not None)
    with torch.no_grad():
        first.weight.copy_(u_in.t().reshape(r_in, cin, 1, 1))
        middle.weight.copy_(core)
        last.weight.copy_(u_out.reshape(cout, r_out, 1, 1))
        if conv.bias is not None:
            last.bias.copy_(conv.bias.detach())
    return nn.Sequential(first, middle, last)


class LowRankPass(Pass):
    name = "lowrank"
    Config = LowRankConfig
    config: LowRankConfig

    def plan(self, model, sample=None) -> dict[str, object]:
        """Layer name -> its factorised replacement, for every layer where factorising saves
        parameters and (given a sample input) estimated cost; empty when the model as a whole
        would not save `min_model_saving` (the reason is left in `self.why`)."""
        from torch import nn

        protected = {id(m) for m in classifier_layers(model)}
        factorise = factorise_tucker2 if self.config.conv_method == "tucker2" else factorise_conv
        plan = {}
        for name, module in model.named_modules():
            if id(module) in protected or name in self.config.exclude:
                continue
            new = None
            if isinstance(module, nn.Linear) and "linear" in self.config.kinds:
                new = factorise_linear(module, self.config.rank_ratio, self.config.energy)
            elif isinstance(module, nn.Conv2d) and "conv" in self.config.kinds:
                new = factorise(module, self.config.rank_ratio, self.config.energy)
            if new is not None:
                plan[name] = new
        setting = f"rank_ratio {self.config.rank_ratio}" if self.config.rank_ratio else f"energy {self.config.energy}"
        self.why = f"no layer gets fewer parameters at this rank ({setting})"
        if sample is None or not plan:
            return plan
        shapes = layer_shapes(model, sample)
        total = model_cost(model, shapes)
        savings = {n: rewrite_saving(model.get_submodule(n), new, shapes[n], total) for n, new in plan.items()
                   if n in shapes}
        paying = {n: plan[n] for n, s in savings.items() if s.layer >= self.config.min_cost_saving}
        model_saving = sum(savings[n].model for n in paying)
        if not paying:
            best = max(savings, key=lambda n: savings[n].layer)
            self.why = (f"no factorisation is estimated to pay: the best, {best}, saves {savings[best].layer:.0%} of "
                        f"its cost (needs {self.config.min_cost_saving:.0%}; the extra operators and intermediate "
                        f"activations cost more than the MACs saved)")
            return {}
        if model_saving < self.config.min_model_saving:
            self.why = (f"factorising {short_list(list(paying), 3)} saves an estimated {model_saving:.1%} of the "
                        f"model's cost (needs {self.config.min_model_saving:.0%}): the layers that would pay are a "
                        f"small share of the model (its convolutions are depthwise or 1x1)")
            return {}
        return paying

    def validate(self, model, dataset) -> None:
        check_layer_names(model, self.config.exclude, "lowrank exclude")

    def check(self, candidate: Candidate, ctx: Context):
        reason = super().check(candidate, ctx)
        if reason:
            return reason
        self._planned = (id(candidate.module), self.plan(candidate.module, _sample(ctx)))  # SVDs are costly: apply reuses them
        if not self._planned[1]:
            return f"lowrank: '{candidate.name}': {self.why}"
        return None

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        parent = candidate.module.eval()
        model = copy.deepcopy(parent)
        planned = getattr(self, "_planned", None)
        plan = planned[1] if planned and planned[0] == id(parent) else self.plan(model, _sample(ctx))
        for name, new in plan.items():
            replace_module(model, name, new)
        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
        factory = kd_recovery(parent, ctx) if self.config.distill else None
        transfer = recovery_transfer(ctx, self.config.distill)
        module = finetune(model, ctx, "lowrank: fine-tune", epochs,
                          ("lowrank", self.config.model_dump(), module_fingerprint(parent)), loss_factory=factory,
                          transfer=transfer)
        names = list(plan)
        shown = short_list(names)
        method = "" if "conv" not in self.config.kinds else f" ({self.config.conv_method} for convolutions)"
        note = (f"low-rank factorisation{method} of {len(names)} layer(s): {shown}; {epochs:g} epochs recovery"
                f"{taught_on(transfer)}")
        derived = candidate.derive(self, module=module, notes=candidate.notes + (note,))
        return record_transfer(derived, transfer, parent, ctx)


def _sample(ctx: Context):
    import torch

    return torch.from_numpy(ctx.dataset.train.x[:1])
