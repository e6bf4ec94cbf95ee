"""Pruning inside blocks, for models whose whole dependency graph Torch-Pruning cannot build: a
channel shuffle between blocks (ShuffleNet V2: a view and transpose outside any module, which its
grouping divides by zero on), or Swin's windowed attention (its graph grows without end).

Each outermost block that Torch-Pruning can trace on its own is pruned with its input and output
widths kept, so only the widths inside it shrink: a transformer block's MLP hidden width, a
ShuffleNet branch's inner channels. A block is accepted only after a trial on a copy keeps the
shapes it takes and gives; otherwise its children are tried.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from edgebench.compress.probe import probe
from edgebench.compress.tp_limits import TORCH_PRUNING_ERRORS, unprunable_reason

# make_pruner(block, forward_fn, ignored_layers, importance or None for the configured one)
PrunerFactory = Callable[[Any, Callable, list, Any], Any]


def block_pruners(model, example, make_pruner: PrunerFactory, protected: list) -> list[tuple[str, Any]]:
    """(block name, pruner) for the outermost blocks of `model` that can be pruned on their own;
    empty when none can."""
    calls = _recorded_calls(model, example)
    kept = {id(m) for m in protected}
    found: list[tuple[str, Any]] = []

    def visit(name: str, block) -> None:
        layers = _layers(block)
        if len(layers) < 2 or id(block) not in calls:
            return  # no width inside it to narrow, or not called by the forward
        args, kwargs, output = calls[id(block)]

        def forward(module, _inputs):
            return module(*args, **kwargs)

        ignored = _fixed_width_layers(layers) + [m for m in block.modules() if id(m) in kept]
        if unprunable_reason(block) is None and _trial(block, forward, ignored, output, make_pruner):
            found.append((name, make_pruner(block, forward, ignored, None)))
            return
        for child_name, child in block.named_children():
            visit(f"{name}.{child_name}", child)

    for child_name, child in model.named_children():
        visit(child_name, child)
    return found


def _layers(block) -> list:
    from torch import nn

    return [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _fixed_width_layers(layers: list) -> list:
    """The block's last layer (its output width is the block's) and a grouped first convolution
    (depthwise: its output channels are its input channels, the block's input width)."""
    fixed = [layers[-1]]
    if getattr(layers[0], "groups", 1) > 1:
        fixed.append(layers[0])
    return fixed


def _size(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _recorded_calls(model, example) -> dict[int, tuple]:
    """id(module) -> (args, kwargs, output) of its first call in one forward of `example`."""
    calls: dict[int, tuple] = {}

    def record(module, args, kwargs, output):
        calls.setdefault(id(module), (_detached(args), _detached(kwargs), _shapes(output)))

    probe(model, example, [(m, record) for m in model.modules()], with_kwargs=True)
    return calls


def _detached(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value


def _shapes(value):
    """The shapes of a module's output, nested as it is, to compare before and after pruning."""
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shapes(v) for v in value)
    return None


def _trial(block, forward, ignored: list, output, make_pruner: PrunerFactory) -> bool:
    """Whether pruning a copy of `block` keeps the shapes it takes and gives. Magnitude importance:
    the copy has no gradients for Taylor's, and which channels go does not change the shapes."""
    import torch
    import torch_pruning as tp

    trial = copy.deepcopy(block)
    twin = {id(a): b for a, b in zip(block.modules(), trial.modules())}  # every ignored layer is in the block
    try:
        pruner = make_pruner(trial, forward, [twin[id(m)] for m in ignored], tp.importance.MagnitudeImportance(p=2))
        for _ in range(pruner.iterative_steps):
            pruner.step()
        with torch.no_grad():
            same_shapes = _shapes(forward(trial.eval(), None)) == output
        return same_shapes and _size(trial) < _size(block)
    except TORCH_PRUNING_ERRORS:
        return False
