"""Removing whole blocks: the depth-reduced distillation student of a family that has no smaller
sibling and whose channels Torch-Pruning cannot remove (channel shuffles, windowed attention)."""
from __future__ import annotations

from edgebench.compress.probe import probe
from edgebench.core.errors import IncompatibleError


def repeated_block_runs(model, sample) -> list[tuple[str, list[str]]]:
    """(Sequential's name, [child names]) for every run of two or more consecutive children of one
    type, each with parameters and an output of its input's shape (the repeated blocks of a stage:
    ResNet's bottlenecks after the first, a ViT's encoder blocks, Swin's and ShuffleNet's units)."""
    import torch
    from torch import nn

    shapes: dict[int, bool] = {}

    def record(module, args, out):
        if len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            shapes[id(module)] = tuple(args[0].shape) == tuple(out.shape)

    sequentials = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Sequential)]
    probe(model, sample, [(child, record) for _, seq in sequentials for child in seq])
    runs = []
    for name, seq in sequentials:
        run: list[str] = []
        for key, child in [*seq.named_children(), ("", None)]:
            keeps_shape = (child is not None and shapes.get(id(child), False)
                           and any(True for _ in child.parameters()))
            if keeps_shape and run and type(seq.get_submodule(run[-1])) is type(child):
                run.append(key)
                continue
            if len(run) >= 2:
                runs.append((name, run))
            run = [key] if keeps_shape else []
    return runs


def half_depth_copy(model, sample, num_classes: int):
    """`model` (modified in place) without every second block of each run of repeated blocks; a
    one-line error when it has none, or when the shallower model no longer runs."""
    import torch

    dropped = []
    for name, run in repeated_block_runs(model, sample):
        seq = model.get_submodule(name) if name else model
        for key in run[1::2]:
            del seq._modules[key]
            dropped.append(f"{name}.{key}" if name else key)
    if not dropped:
        raise IncompatibleError("it has no run of repeated blocks to halve")
    try:
        with torch.no_grad():
            out = model.eval()(sample)
    except RuntimeError as e:  # a block another part of the model indexes by position: not shallowable
        raise IncompatibleError(f"without {dropped[0]} it no longer runs: {str(e).splitlines()[0][:120]}") from None
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise IncompatibleError(f"without every second repeated block it outputs shape {tuple(out.shape)}")
    return model, dropped
