"""Removing whole channels with Torch-Pruning's dependency graph (DepGraph): what the prune pass
and the width-reduced distillation students share."""
from __future__ import annotations

from edgebench.compress.surgery import classifier_layers
from edgebench.core.errors import IncompatibleError


def prune_channels(model, dataset, config):
    """Remove channels in place with DepGraph and return the model (`config` carries ratio,
    importance, global_ranking, protect, round_to); one-line error when the
    architecture has couplings Torch-Pruning cannot follow."""
    import torch
    import torch.nn.functional as F
    import torch_pruning as tp

    if any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules()):
        raise IncompatibleError("prune: channel pruning does not remove attention heads; transformers are not pruned "
                                "by this pass (use distill with a smaller student)")
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
    except Exception as e:  # noqa: BLE001 - DepGraph raises assorted errors on couplings it cannot trace
        raise IncompatibleError(f"prune: Torch-Pruning cannot prune this architecture "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if out.shape[-1] != dataset.num_classes:
        raise IncompatibleError(f"prune: the pruned model outputs {out.shape[-1]} classes instead of {dataset.num_classes}")
    return model


class _HalfWidth:
    """The prune settings of a width-reduced student: uniform, magnitude, nothing protected."""
    ratio = 0.5
    importance = "magnitude"
    global_ranking = False
    protect: list = []
    round_to = 8


def half_width_copy(model, dataset):
    """`model` with half of every prunable layer's channels removed (before any training: the
    distillation student of a family that has no smaller sibling)."""
    return prune_channels(model, dataset, _HalfWidth())
