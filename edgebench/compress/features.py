"""Intermediate features for distillation: capture a model's layer outputs by name with forward
hooks, and match student and teacher layers automatically by spatial resolution."""
from __future__ import annotations

from edgebench.compress.probe import probe
from edgebench.compress.surgery import check_layer_names, classifier_layers
from edgebench.core.errors import IncompatibleError


class FeatureTap:
    """Records the outputs of named layers (and the classifier's input, the embedding) on each
    forward pass. Hooks are removed by `close()`; the model is left as it was."""

    def __init__(self, model, names: list[str], embedding: bool = False):
        check_layer_names(model, names, "distill")
        self.names = list(names)
        self.outputs: dict[str, object] = {}
        self.embedding = None
        modules = dict(model.named_modules())
        self._handles = [modules[n].register_forward_hook(self._saver(n)) for n in self.names]
        if embedding:
            head = classifier_layers(model)
            if head:
                self._handles.append(head[0].register_forward_pre_hook(self._embed))

    def _saver(self, name):
        def hook(_module, _inputs, output):
            self.outputs[name] = output
        return hook

    def _embed(self, _module, inputs):
        self.embedding = inputs[0].flatten(1)

    def features(self) -> list:
        return [self.outputs[n] for n in self.names]

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def stage_outputs(model, sample) -> dict[int, str]:
    """Spatial size -> the name of the module that last produced a 4-D output of that size.

    Forward hooks fire when a module finishes, so a block that contains others wins over its
    parts: this picks each resolution stage's output, whatever the architecture calls it.
    """
    import torch

    order: dict[int, str] = {}

    def watch(name):
        def hook(_m, _i, out):
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                order[int(out.shape[-1])] = name
        return hook

    probe(model, sample, [(m, watch(n)) for n, m in model.named_modules() if n])
    return order


def auto_pairs(student, teacher, sample, limit: int = 3) -> list[tuple[str, str]]:
    """Pairs (student layer, teacher layer) at the same spatial resolutions, deepest first,
    at most `limit` of them."""
    s_stages, t_stages = stage_outputs(student, sample), stage_outputs(teacher, sample)
    shared = sorted(set(s_stages) & set(t_stages))[:limit]  # smallest sizes are the deepest stages
    if not shared:
        raise IncompatibleError("distill: student and teacher share no feature-map resolution to match layers on; "
                                "name the layers with 'layers: [[student, teacher], ...]'")
    return [(s_stages[size], t_stages[size]) for size in shared]
