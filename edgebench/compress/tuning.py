"""What the passes that change a model share: finding layers by name, protecting the classifier,
and recovery fine-tuning that is cached by content hash and scaled by the training budget."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

from ..cache import cached_module, content_key, module_fingerprint
from ..errors import UsageError, closest
from ..train import LossFn, TrainConfig, fit
from .base import Context

# Learning rate for recovery fine-tuning: below the baseline's 2e-3 so a short schedule repairs the
# damage of a structural change without undoing what the baseline learned.
RECOVERY_LR = 1e-3


def check_layer_names(model, names: Iterable[str], what: str) -> None:
    """One-line error for a layer name the model does not have, with the nearest real name."""
    known = dict(model.named_modules())
    for name in names:
        if name not in known:
            raise UsageError(f"{what}: the model has no layer '{name}'{closest(name, [k for k in known if k])}")


def classifier_layers(model, num_classes: Optional[int] = None) -> list:
    """The layers that produce the class scores: the last Linear, or (squeezenet-style heads) the
    last convolution when no Linear exists. Passes never prune or factorise these."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        return [linears[-1]]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return [convs[-1]] if convs else []


def replace_module(model, name: str, new) -> None:
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], new)


def recovery_epochs(requested: Optional[float], ctx: Context, default: float) -> float:
    """Epochs of fine-tuning: what the config asks, else the pass's default, times the budget."""
    return (default if requested is None else requested) * ctx.budget


def finetune(module, ctx: Context, label: str, epochs: float, key_parts: tuple,
             loss_factory: Optional[Callable[[object], tuple[LossFn, list, Callable[[], None]]]] = None,
             lr: float = RECOVERY_LR):
    """Fine-tune `module` (already a private copy) for `epochs`, reusing a cached result.

    `loss_factory(module) -> (loss_fn, extra_params, cleanup)` builds the objective (e.g.
    distillation with adapters whose parameters train too); `cleanup()` removes its hooks before
    the module is cached. None means cross-entropy on the labels. BatchNorm
    statistics are re-estimated at the end by `fit`, as after every training here.
    """
    if epochs <= 0:
        return module.eval()
    config = TrainConfig(epochs=epochs, lr=lr, seed=ctx.seed)
    key = content_key(label, key_parts, module_fingerprint(module), ctx.dataset.fingerprint(), config.as_key())

    def build():
        loss_fn, extra, cleanup = (None, [], None)
        if loss_factory is not None:
            loss_fn, extra, cleanup = loss_factory(module)
        try:
            return fit(module, ctx.dataset.train, config, loss_fn=loss_fn, params=list(module.parameters()) + list(extra),
                       progress=lambda done, total: ctx.report(label, done, total))
        finally:
            if cleanup:
                cleanup()

    return cached_module(key, build).eval()


def kd_recovery(parent, ctx: Context, temperature: Optional[float] = None):
    """Loss factory for `finetune` that recovers a rewritten model by distilling from `parent`,
    the model before the rewrite (shared by prune, separable and lowrank)."""
    from .distill import DistillPass

    config: dict = {"student": "self", "losses": [{"name": "kd"}]}
    if temperature is not None:
        config["temperature"] = temperature
    kd = DistillPass(config)
    return lambda student: kd.objective(student, parent, ctx.dataset.train.x[:2])


def short_list(names: list[str], shown: int = 8) -> str:
    """'a, b, c and 5 more' for notes that name the layers a pass changed."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
