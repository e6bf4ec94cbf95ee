"""Unstructured magnitude pruning (Han et al. 2015): the smallest weights are set to zero, then the
survivors are fine-tuned with the zeros held (torch.nn.utils.prune's masks), by default distilling
from the dense model.

The model keeps its shape: a dense runtime multiplies the zeros like any other weight, so this
buys no speed unless the runtime exploits sparsity (sparse kernels, or structured 2:4 sparsity on
GPUs that support it); what it buys is a smaller compressed file and a starting point for such
runtimes. The candidate's note says so, and the report's measured latency shows it.
"""
from __future__ import annotations

import copy
from typing import Literal, Optional

from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.distill import kd_recovery
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.surgery import classifier_layers
from edgebench.compress.transfer_set import record_transfer, recovery_transfer, taught_on
from edgebench.core.cache import module_fingerprint

RECOVERY_EPOCHS = 0.5


class SparsifyConfig(PassConfig):
    sparsity: float = Field(0.5, gt=0, lt=1)  # fraction of weights set to zero
    scope: Literal["global", "layer"] = "global"  # rank magnitudes across all layers, or within each
    epochs: Optional[float] = Field(None, ge=0)
    distill: bool = True


def prunable_weights(model) -> list:
    from torch import nn

    head = {id(m) for m in classifier_layers(model)}
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in head]


def zero_fraction(model) -> float:
    weights = [m.weight for m, _ in prunable_weights(model)]
    return sum(int((w == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights))


class SparsifyPass(Pass):
    name = "sparsify"
    Config = SparsifyConfig
    config: SparsifyConfig

    def label(self) -> str:
        return f"sparse{round(100 * self.config.sparsity)}"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        import torch.nn.utils.prune as tprune

        parent = candidate.module.eval()
        model = copy.deepcopy(parent)
        targets = prunable_weights(model)
        if self.config.scope == "global":
            tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=self.config.sparsity)
        else:
            for module, attr in targets:
                tprune.l1_unstructured(module, attr, amount=self.config.sparsity)
        recovery = kd_recovery(parent, ctx) if self.config.distill else None
        transfer = recovery_transfer(ctx, self.config.distill)

        def factory(student):
            loss_fn, extra, cleanup = recovery(student) if recovery else (None, [], None)

            def make_permanent():  # the masks' zeros become plain zeros in the weights before caching
                if cleanup:
                    cleanup()
                for module, attr in targets:
                    tprune.remove(module, attr)
            return loss_fn, extra, make_permanent

        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
        if epochs <= 0:
            factory(model)[2]()
        module = finetune(model, ctx, f"sparsify {self.config.sparsity:g}: fine-tune", epochs,
                          ("sparsify", self.config.model_dump(), module_fingerprint(parent)), loss_factory=factory,
                          transfer=transfer)
        note = (f"unstructured magnitude pruning ({self.config.scope}): {zero_fraction(module):.0%} of conv/linear "
                f"weights are zero, {epochs:g} epochs recovery{taught_on(transfer)}; the shape is unchanged, so dense "
                f"runtimes gain no "
                f"speed unless they exploit sparsity (the file compresses better)")
        derived = candidate.derive(self, module=module, notes=candidate.notes + (note,))
        return record_transfer(derived, transfer, parent, ctx)
