"""Removing whole channels with Torch-Pruning's dependency graph (DepGraph): what the prune pass
and the width-reduced distillation students share."""
from __future__ import annotations

import math
from typing import Optional

from edgebench.compress.layer_cost import layer_shapes, module_cost
from edgebench.compress.surgery import classifier_layers
from edgebench.core.errors import EdgebenchError, IncompatibleError

# What Torch-Pruning raises on an architecture it cannot handle (a ZeroDivisionError in its
# channel-shuffle grouping, assertions and NotImplementedError on unsupported couplings, shape
# RuntimeErrors from the traced forward): a decline with the reason, not a bug report.
TORCH_PRUNING_ERRORS = (AssertionError, NotImplementedError, ValueError, ZeroDivisionError, RuntimeError)


def unprunable_reason(model) -> Optional[str]:
    """Why Torch-Pruning should not be run on `model` at all, or None.

    Windowed attention with a relative-position bias table (torchvision's Swin and Swin V2; MaxViT
    keeps one too): on swin_t at 64 px, MetaPruner's grouping (get_all_groups, following index
    mappings through the window partition's reshapes and permutes) was still running after 100 s at
    3.7 GB and reached 15 GB, without end. Torch-Pruning also takes the table for an unwrapped
    parameter whose last dimension it would prune, but that dimension counts heads, not channels."""
    # Swin keeps a learned table, Swin V2 an MLP over a coordinates table (cpb_mlp): both index it with
    # a relative_position_index buffer, which is what marks the windowed attention here.
    tables = [name for name, _ in [*model.named_parameters(), *model.named_buffers()]
              if name.endswith(("relative_position_bias_table", "relative_position_index"))]
    if not tables:
        return None
    return (f"Torch-Pruning cannot prune windowed attention with a relative-position bias ({tables[0]}"
            f"{f' and {len(tables) - 1} more' if len(tables) > 1 else ''}: Swin-style shifted windows), its "
            f"dependency graph grows without end on the window partition")


def protected_layers(model, config) -> list:
    """Layers whose output channels are never removed: the classifier, user-named layers, and by
    default the stem (few channels, full resolution: cutting them costs accuracy for little time)
    and each squeeze-excitation gate's squeeze (its bottleneck: tiny, and it decides the block's
    scaling).

    Only the squeeze layer: the gate's expanding layer shares its output channels with the block's
    expanded channels (DepGraph couples them), so protecting it froze every gated block's expansion
    whole; on mobilenet_v3_large at 50% that kept 49% of the MACs instead of 31%."""
    from torch import nn

    protected = classifier_layers(model) + [model.get_submodule(n) for n in config.protect]
    if getattr(config, "protect_stem", False):
        protected += [m for m in model.modules() if isinstance(m, nn.Conv2d)][:1]
    if getattr(config, "protect_se", False):
        for module in se_gates(model):
            protected += [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:1]
    return protected


def se_gates(model) -> list:
    """The squeeze-excitation modules of `model` (torchvision's SqueezeExcitation, timm's SEModule
    and the common SELayer)."""
    return [m for m in model.modules()
            if "SqueezeExcit" in type(m).__name__ or type(m).__name__ in ("SELayer", "SEModule")]


def latency_aware_ratios(model, example, ratio: float, protected: list) -> dict:
    """NetAdapt-style per-layer ratios from the cost model (layer_cost.py) rather than one ratio for
    all: a layer's ratio grows with the square root of its estimated cost relative to the mean,
    clipped to [ratio/3, 0.85], then rescaled so the cost-weighted mean stays `ratio`. Layers that
    dominate latency give up more channels; cheap ones, which would save little, keep theirs."""
    from torch import nn

    shapes = layer_shapes(model, example)
    modules = dict(model.named_modules())
    skip = {id(m) for m in protected}
    costs = {modules[n]: module_cost(modules[n], s) for n, s in shapes.items()
             if isinstance(modules[n], nn.Conv2d) and modules[n].groups == 1 and id(modules[n]) not in skip}
    if not costs:
        return {}
    mean = sum(costs.values()) / len(costs)
    raw = {m: (c / mean) ** 0.5 * ratio for m, c in costs.items()}
    scale = ratio * sum(costs.values()) / sum(raw[m] * c for m, c in costs.items())
    return {m: min(0.85, max(ratio / 3, r * scale)) for m, r in raw.items()}


def prune_channels(model, dataset, config, between=None):
    """Remove channels in place with DepGraph and return the model (`config` carries ratio,
    importance, global_ranking, protect, round_to, and optionally protect_stem, protect_se, ratios,
    steps); one-line error when the architecture has couplings Torch-Pruning cannot follow.

    With `steps` > 1 the ratio is reached in equal steps and `between(model, step)` (recovery
    fine-tuning) runs after each but the last: prune a little, recover, repeat (Han et al.)."""
    import torch
    import torch_pruning as tp

    reason = unprunable_reason(model)
    if reason:
        raise IncompatibleError(f"prune: {reason}")
    example = torch.from_numpy(dataset.train.x[:2])
    # Attention keeps its heads and Torch-Pruning narrows each (head_dim = embed_dim / heads), so
    # the width that attention reads must stay a multiple of every head count.
    heads = [m.num_heads for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    round_to = math.lcm(config.round_to or 1, *heads) if heads else config.round_to
    protected = protected_layers(model, config)
    steps = getattr(config, "steps", 1)
    importance = {"magnitude": tp.importance.MagnitudeImportance(p=2),
                  "bn": tp.importance.BNScaleImportance(),
                  "taylor": tp.importance.TaylorImportance()}[config.importance]
    per_layer = latency_aware_ratios(model, example, config.ratio, protected) \
        if getattr(config, "ratios", "uniform") == "latency" else None
    try:
        pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=config.ratio,
                                      pruning_ratio_dict=per_layer or None, ignored_layers=protected,
                                      global_pruning=config.global_ranking, round_to=round_to,
                                      iterative_steps=steps)
        for step in range(steps):
            if config.importance == "taylor":
                _accumulate_gradients(model, dataset)
            pruner.step()
            _sync_vit_width(model)
            model.zero_grad(set_to_none=True)
            if between is not None and step < steps - 1:
                between(model, step)
        model.eval()
        with torch.no_grad():
            out = model(example)
    except EdgebenchError:
        raise  # from `between`: recovery's own one-line errors
    except TORCH_PRUNING_ERRORS as e:  # a coupling DepGraph cannot follow; any other error is a bug and propagates
        raise IncompatibleError(f"prune: Torch-Pruning cannot prune this architecture "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if out.shape[-1] != dataset.num_classes:
        raise IncompatibleError(f"prune: the pruned model outputs {out.shape[-1]} classes instead of {dataset.num_classes}")
    return model


def _sync_vit_width(model) -> None:
    """torchvision's VisionTransformer reshapes its patch embedding with its own `hidden_dim`
    attribute, which Torch-Pruning does not know about: set it to the pruned width."""
    from torch import nn

    for m in model.modules():
        if isinstance(getattr(m, "hidden_dim", None), int) and isinstance(getattr(m, "conv_proj", None), nn.Conv2d):
            m.hidden_dim = m.conv_proj.out_channels


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


def _accumulate_gradients(model, dataset) -> None:
    """Taylor importance reads gradients: accumulate them over a few labelled batches, in training
    mode as the model trains. Dropout then draws from torch's random state, which depends on
    whatever ran before in this process (a baseline trained here, or found in the cache): seeded
    here, the same model prunes to the same channels in every process, and its recovery's cache
    entry is found again."""
    import torch
    import torch.nn.functional as F

    model.train()
    model.zero_grad()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for start in range(0, min(256, len(dataset.train)), 64):  # a split of under 256 images
            x = torch.from_numpy(dataset.train.x[start:start + 64])
            F.cross_entropy(model(x), torch.from_numpy(dataset.train.y[start:start + 64])).backward()
