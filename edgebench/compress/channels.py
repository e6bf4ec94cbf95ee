"""Removing whole channels with Torch-Pruning's dependency graph (DepGraph): what the prune pass
and the width-reduced distillation students share."""
from __future__ import annotations

import math

from edgebench.compress.block_prune import block_pruners
from edgebench.compress.layer_cost import layer_shapes, module_cost
from edgebench.compress.surgery import classifier_layers
from edgebench.compress.tp_limits import TORCH_PRUNING_ERRORS, unprunable_reason
from edgebench.core.errors import EdgebenchError, IncompatibleError


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


def prune_channels(model, dataset, config, between=None, inside_blocks: bool = True):
    """Remove channels in place with DepGraph; return (the model, how: None when pruned as a whole,
    else a note that only widths inside its blocks were). `config` carries ratio, importance,
    global_ranking, protect, round_to, and optionally protect_stem, protect_se, ratios, steps.

    Where Torch-Pruning cannot build the whole model's graph, and `inside_blocks`, each block it can
    trace alone is pruned keeping its input and output widths (block_prune.py); a one-line error
    when neither works.

    With `steps` > 1 the ratio is reached in equal steps and `between(model, step)` (recovery
    fine-tuning) runs after each but the last: prune a little, recover, repeat (Han et al.)."""
    import torch
    import torch_pruning as tp

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
        if getattr(config, "ratios", "uniform") == "latency" else {}

    def make_pruner(module, forward_fn, ignored, chosen=None):
        inside = {id(m) for m in module.modules()}
        return tp.pruner.MetaPruner(module, example, importance=chosen or importance, pruning_ratio=config.ratio,
                                    pruning_ratio_dict={m: r for m, r in per_layer.items() if id(m) in inside} or None,
                                    ignored_layers=ignored, global_pruning=config.global_ranking, round_to=round_to,
                                    iterative_steps=steps, forward_fn=forward_fn)

    how = None
    reason = unprunable_reason(model)
    try:
        pruners = [] if reason else [make_pruner(model, None, protected)]
    except TORCH_PRUNING_ERRORS as e:  # a coupling DepGraph cannot follow; any other error is a bug and propagates
        reason = f"Torch-Pruning cannot prune this architecture ({_first_line(e)})"
    if reason:
        blocks = block_pruners(model, example, make_pruner, protected) if inside_blocks else []
        if not blocks:
            raise IncompatibleError(f"prune: {reason}" + (", nor any block inside it on its own" if inside_blocks else ""))
        pruners = [pruner for _, pruner in blocks]
        how = f"inside {len(blocks)} blocks only, each keeping its input and output widths ({reason})"
    try:
        for step in range(steps):
            if config.importance == "taylor":
                _accumulate_gradients(model, dataset)
            for pruner in pruners:
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
    except TORCH_PRUNING_ERRORS as e:
        raise IncompatibleError(f"prune: Torch-Pruning cannot prune this architecture ({_first_line(e)})") from None
    if out.shape[-1] != dataset.num_classes:
        raise IncompatibleError(f"prune: the pruned model outputs {out.shape[-1]} classes instead of {dataset.num_classes}")
    return model, how


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"


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
    distillation student of a family that has no smaller sibling). Whole-model only: narrowed
    inside its blocks alone, a student keeps every width between them, and half depth is the
    better student then (distill.smaller_copy)."""
    return prune_channels(model, dataset, _HalfWidth(), inside_blocks=False)[0]


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
