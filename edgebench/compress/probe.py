"""One forward pass that watches modules: what several passes read of a model before they change it
(its layers' shapes, its stages' outputs, its repeated blocks, the calls of the blocks to prune)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def probe(model, sample, watched: Iterable[tuple[Any, Callable]], with_kwargs: bool = False) -> None:
    """Run `model` on `sample` once, in eval mode without gradients, with each (module, hook) of
    `watched` as a forward hook; the hooks are removed and the model's mode restored after, also
    when the forward raises."""
    import torch

    handles = [module.register_forward_hook(hook, with_kwargs=with_kwargs) for module, hook in watched]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(sample)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
