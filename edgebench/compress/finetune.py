"""Recovery fine-tuning after a pass changed a model: cached by content hash, scaled by the
training budget."""
from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from edgebench.compress.base import Context
from edgebench.core.cache import content_key, module_fingerprint, source_digest
from edgebench.core.module_cache import cached_module
from edgebench.models.data import TransferSet
from edgebench.models.train import LossFn, TrainConfig, fit

# Learning rate for recovery fine-tuning: below the baseline's 2e-3 so a short schedule repairs the
# damage of a structural change without undoing what the baseline learned.
RECOVERY_LR = 1e-3


def recovery_epochs(requested: Optional[float], ctx: Context, default: float) -> float:
    """Epochs of fine-tuning: what the config asks, else the pass's default, times the budget."""
    return (default if requested is None else requested) * ctx.budget


def finetune(module, ctx: Context, label: str, epochs: float, key_parts: tuple,
             loss_factory: Optional[Callable[[object], tuple[LossFn, list, Callable[[], None]]]] = None,
             lr: float = RECOVERY_LR, transfer: Optional[TransferSet] = None):
    """Fine-tune `module` (already a private copy) for `epochs`, reusing a cached result.

    `loss_factory(module) -> (loss_fn, extra_params, cleanup)` builds the objective (e.g.
    distillation with adapters whose parameters train too); `cleanup()` removes its hooks before
    the module is cached. None means cross-entropy on the labels. `transfer`: unlabelled images
    that each epoch also trains on, with labels None (the objective must then need none). BatchNorm
    statistics are re-estimated at the end by `fit`, as after every training here.
    """
    if epochs <= 0:
        return module.eval()
    config = TrainConfig(epochs=epochs, lr=lr, seed=ctx.seed)
    key = content_key(label, key_parts, module_fingerprint(module), ctx.dataset.fingerprint(), config.as_key(),
                      source_digest("edgebench.compress", "edgebench.models.train"),
                      *((transfer.fingerprint(),) if transfer is not None else ()))

    def build():
        loss_fn, extra, cleanup = (None, [], None)
        if loss_factory is not None:
            loss_fn, extra, cleanup = loss_factory(module)
        try:
            return fit(module, ctx.dataset.train, config, loss_fn=loss_fn, params=list(module.parameters()) + list(extra),
                       progress=lambda done, total: ctx.report(label, done, total),
                       unlabelled=transfer.x if transfer is not None else None)
        finally:
            if cleanup:
                cleanup()

    return cached_module(key, build).eval()
