"""Finding layers by name and swapping modules in place: what the passes that change a model's
structure share."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from edgebench.core.errors import UsageError, closest


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


def short_list(names: list[str], shown: int = 8) -> str:
    """'a, b, c and 5 more' for notes that name the layers a pass changed."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
