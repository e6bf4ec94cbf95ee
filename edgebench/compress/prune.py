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
from edgebench.compress.channels import prune_channels
from edgebench.compress.distill import kd_recovery
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.surgery import check_layer_names
from edgebench.compress.transfer_set import record_transfer, recovery_transfer, taught_on
from edgebench.core.cache import module_fingerprint
from edgebench.models.zoo import count_params_and_macs

# 0.5 left 50%-pruned mobilenetv3 at 63% top-1 (baseline 94%); 1.5 lost 1.03 +- 1.83 points and 3
# gained 0.73 +- 1.37 (3 seeds, benchmarks/results/prune_levers.md): within a point of the baseline.
RECOVERY_EPOCHS = 3.0


class PruneConfig(PassConfig):
    ratio: float = Field(0.5, gt=0, lt=1)  # fraction of channels removed from each prunable layer (or globally)
    # Taylor (first-order loss change, Molchanov et al. 2019) by default: at 50% on mobilenetv3 it lost
    # 1.2 +- 1.4 points against magnitude's 2.9 +- 3.6, and beat magnitude on each of 3 seeds
    # (benchmarks/results/compression-levers3.md).
    importance: Literal["magnitude", "bn", "taylor"] = "taylor"
    global_ranking: bool = False  # rank channels across layers rather than per layer
    protect: list[str] = Field(default_factory=list)  # layer names never pruned (the classifier always is)
    protect_stem: bool = True  # the first convolution keeps its channels
    protect_se: bool = True  # each squeeze-excitation gate keeps its squeeze (bottleneck) channels
    ratios: Literal["uniform", "latency"] = "uniform"  # latency: per-layer ratios from the cost model (NetAdapt-style)
    steps: int = Field(1, ge=1, le=10)  # >1: reach the ratio in steps with recovery between (Han et al.)
    round_to: Optional[int] = Field(8, ge=1)  # keep channel counts multiples of this (SIMD-friendly)
    epochs: Optional[float] = Field(None, ge=0)  # recovery fine-tuning; default RECOVERY_EPOCHS x budget
    distill: bool = True  # recover with KD from the unpruned model rather than labels alone
    temperature: float = Field(4.0, gt=0)


class PrunePass(Pass):
    name = "prune"
    Config = PruneConfig
    config: PruneConfig

    def validate(self, model, dataset) -> None:
        check_layer_names(model, self.config.protect, "prune protect")

    def label(self) -> str:
        return f"prune{round(100 * self.config.ratio)}"

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        check_layer_names(candidate.module, self.config.protect, "prune protect")
        parent = candidate.module.eval()
        epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
        factory = kd_recovery(parent, ctx, self.config.temperature) if self.config.distill else None
        transfer = recovery_transfer(ctx, self.config.distill)
        per_step = epochs / self.config.steps  # the same total recovery, spread over the steps

        def recover_between(model, step):
            recovered = finetune(model, ctx, f"prune {self.config.ratio:g}: recover step {step + 1}", per_step,
                                 ("prune-step", step, self.config.model_dump(), module_fingerprint(parent)),
                                 loss_factory=factory, transfer=transfer)
            model.load_state_dict(recovered.state_dict())
            model.train()

        pruned, inside_blocks = prune_channels(copy.deepcopy(parent), ctx.dataset, self.config, between=recover_between)
        before = count_params_and_macs(parent, ctx.dataset.input_shape)
        after = count_params_and_macs(pruned, ctx.dataset.input_shape)
        module = finetune(pruned, ctx, f"prune {self.config.ratio:g}: fine-tune", per_step,
                          ("prune", self.config.model_dump(), module_fingerprint(parent)), loss_factory=factory,
                          transfer=transfer)
        how = f"{self.config.importance}, {self.config.ratios}{' global' if self.config.global_ranking else ''}" + \
            (f", {self.config.steps} steps" if self.config.steps > 1 else "")
        if inside_blocks:
            how += ", inside blocks only"
        note = (f"pruned {self.config.ratio:.0%} of channels ({how}): params "
                f"{before[0]:,} -> {after[0]:,}, MACs {before[1]:,} -> {after[1]:,}; "
                f"{epochs:g} epochs recovery{' with KD from the unpruned model' if self.config.distill else ''}"
                f"{taught_on(transfer)}{f'; {inside_blocks}' if inside_blocks else ''}")
        derived = candidate.derive(self, module=module, notes=candidate.notes + (note,))
        return record_transfer(derived, transfer, parent, ctx)
