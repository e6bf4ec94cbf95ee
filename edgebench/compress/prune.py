"""Structured channel pruning with Torch-Pruning's dependency graph (DepGraph).

Whole channels are removed, with every coupled layer (BatchNorm, the next convolution, residual
partners, squeeze-excitation gates) kept consistent by DepGraph, so the model really shrinks and
every runtime runs it faster; the classifier and user-named layers are never pruned. Then the
model is fine-tuned, by default distilling from the unpruned model (the usual recovery recipe).
"""
from __future__ import annotations

import copy
from typing import Literal, Optional

from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.distill import kd_recovery
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.surgery import check_layer_names, classifier_layers
from edgebench.core.cache import module_fingerprint
from edgebench.core.errors import IncompatibleError
from edgebench.models.zoo import count_params_and_macs

# What Torch-Pruning raises on couplings its DepGraph cannot follow (its own asserts,
# NotImplementedError and ValueError; ZeroDivisionError on channel shuffles' groups), and what the
# pruned model's forward raises when a coupling was cut wrongly (RuntimeError: size mismatch).
# Anything else (TypeError, AttributeError, KeyError, ...) is a bug and propagates.
TORCH_PRUNING_ERRORS = (AssertionError, NotImplementedError, ValueError, ZeroDivisionError, RuntimeError)
RECOVERY_EPOCHS = 1.5  # 0.5 left 50%-pruned mobilenetv3 at 63% top-1 (baseline 94%); 1.5 gives 89% (benchmarks/compression.py)


class PruneConfig(PassConfig):
    ratio: float = Field(0.5, gt=0, lt=1)  # fraction of channels removed from each prunable layer (or globally)
    importance: Literal["magnitude", "bn", "taylor"] = "magnitude"
    global_ranking: bool = False  # rank channels across layers rather than per layer
    protect: list[str] = Field(default_factory=list)  # layer names never pruned (the classifier always is)
    round_to: Optional[int] = Field(8, ge=1)  # keep channel counts multiples of this (SIMD-friendly)
    epochs: Optional[float] = Field(None, ge=0)  # recovery fine-tuning; default RECOVERY_EPOCHS x budget
    distill: bool = True  # recover with KD from the unpruned model rather than labels alone
    temperature: float = Field(4.0, gt=0)


class PrunePass(Pass):
    name = "prune"
    Config = PruneConfig

    def validate(self, model, dataset) -> None:
        check_layer_names(model, self.config.protect, "prune protect")

    def label(self) -> str:
        return f"prune{round(100 * self.config.ratio)}"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        check_layer_names(candidate.module, self.config.protect, "prune protect")
        parent = candidate.module.eval()
        pruned = prune_channels(copy.deepcopy(parent), ctx.dataset, self.config)

        before = count_params_and_macs(parent, ctx.dataset.input_shape)
        after = count_params_and_macs(pruned, ctx.dataset.input_shape)
        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
        factory = kd_recovery(parent, ctx, self.config.temperature) if self.config.distill else None
        module = finetune(pruned, ctx, f"prune {self.config.ratio:g}: fine-tune", epochs,
                          ("prune", self.config.model_dump(), module_fingerprint(parent)), loss_factory=factory)
        note = (f"pruned {self.config.ratio:.0%} of channels ({self.config.importance}): params "
                f"{before[0]:,} -> {after[0]:,}, MACs {before[1]:,} -> {after[1]:,}; "
                f"{epochs:g} epochs recovery{' with KD from the unpruned model' if self.config.distill else ''}")
        return candidate.derive(self, module=module, notes=candidate.notes + (note,))


def prune_channels(model, dataset, config: PruneConfig):
    """Remove channels in place with DepGraph and return the model; one-line error when the
    architecture has couplings Torch-Pruning cannot follow."""
    import torch
    import torch.nn.functional as F
    import torch_pruning as tp

    example = torch.from_numpy(dataset.train.x[:2])
    protected = classifier_layers(model) + [model.get_submodule(n) for n in config.protect]
    importance = {"magnitude": tp.importance.MagnitudeImportance(p=2),
                  "bn": tp.importance.BNScaleImportance(),
                  "taylor": tp.importance.TaylorImportance()}[config.importance]
    try:
        pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=config.ratio,
                                      ignored_layers=protected, global_pruning=config.global_ranking,
                                      round_to=config.round_to)
        if config.importance == "taylor":
            # Taylor importance reads gradients: accumulate them over a few labelled batches.
            model.train()
            model.zero_grad()
            for start in range(0, 256, 64):
                x = torch.from_numpy(dataset.train.x[start:start + 64])
                F.cross_entropy(model(x), torch.from_numpy(dataset.train.y[start:start + 64])).backward()
        pruner.step()
        model.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            out = model(example)
    except TORCH_PRUNING_ERRORS as e:
        raise IncompatibleError(f"prune: Torch-Pruning cannot prune this architecture "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if out.shape[-1] != dataset.num_classes:
        raise IncompatibleError(f"prune: the pruned model outputs {out.shape[-1]} classes instead of {dataset.num_classes}")
    return model
