"""The distillation objective: `ce_weight * CE(labels) + sum(weight_i * loss_i)`, with the
features each loss reads tapped by forward hooks, as a loss function for the training loop."""
from __future__ import annotations

import numpy as np

from edgebench.compress.features import FeatureTap, auto_pairs, stage_outputs
from edgebench.compress.losses import OWN_FEATURES, PAIRED_FEATURES, loss_class
from edgebench.core.errors import IncompatibleError
from edgebench.models.data import Split
from edgebench.models.train import recalibrate_batchnorm

OWN_STAGES = 4  # self-distillation heads on at most this many of the student's stages


def _layer_pairs(spec, family: str, student, teacher, sample) -> list[tuple]:
    """(student layer, teacher layer or None) for the loss's features."""
    import torch

    if family in PAIRED_FEATURES:
        return auto_pairs(student, teacher, torch.from_numpy(sample)) if spec.layers == "auto" \
            else [tuple(p) for p in spec.layers]
    if family in OWN_FEATURES:
        if spec.layers != "auto":
            return [(s, None) for s, _ in spec.layers]
        stages = stage_outputs(student, torch.from_numpy(sample))
        names = [stages[size] for size in sorted(stages, reverse=True)]  # shallow first, deepest last
        if len(names) < 2:
            raise IncompatibleError(f"distill {spec.name}: the student has fewer than two feature stages")
        return [(n, None) for n in names[-OWN_STAGES:]]
    return []


def build_objective(config, student, teacher, sample):
    """(loss_fn, extra parameters that train with the student, cleanup) for `finetune`.

    A data-free loss replaces every real batch with its generator's synthetic one before any model
    sees it; cross-entropy on labels is then skipped (there are no images to label). A batch of a
    transfer set comes with labels None: cross-entropy is skipped and every loss gets labels=None
    (the response, feature and relation losses read none; DML's peer and BYOT's heads then learn
    from the softened outputs alone)."""
    import torch
    import torch.nn.functional as F

    pairs_per_loss = [_layer_pairs(spec, loss_class(spec.name).family, student, teacher, sample)
                      for spec in config.losses]
    s_tap = FeatureTap(student, sorted({s for ps in pairs_per_loss for s, _ in ps}), embedding=True)
    t_tap = FeatureTap(teacher, sorted({t for ps in pairs_per_loss for _, t in ps if t}), embedding=True)
    x_sample = torch.from_numpy(sample)
    with torch.no_grad():
        was = student.training
        student.eval()
        student(x_sample)
        teacher(x_sample)
        student.train(was)
    modules = []
    for spec, pairs in zip(config.losses, pairs_per_loss):
        s_shapes = [tuple(s_tap.outputs[s].shape) for s, _ in pairs]
        t_shapes = [tuple(t_tap.outputs[t].shape) for _, t in pairs if t]
        module = loss_class(spec.name)(s_shapes, t_shapes, temperature=config.temperature, **spec.options)
        module.setup(student, teacher, x_sample)
        modules.append(module.train())
    extra = [p for m in modules for p in m.parameters()]
    weights = [spec.weight for spec in config.losses]
    synthesizers = [m for m in modules if m.family == "datafree"]
    ce_weight = 0.0 if synthesizers else config.ce_weight

    def loss_fn(model, x, y):
        if synthesizers:
            x, y = synthesizers[0].synthesize(x.shape[0]), None
        with torch.no_grad():
            t_logits = teacher(x)
            t_emb = t_tap.embedding if t_tap.embedding is not None else t_logits  # heads without a Linear
            t_feats = dict(t_tap.outputs)
        s_logits = model(x)
        s_emb = s_tap.embedding if s_tap.embedding is not None else s_logits
        # y is None on a transfer batch (unlabelled images): the teacher's targets are all there is.
        total = ce_weight * F.cross_entropy(s_logits, y) if ce_weight and y is not None else 0.0
        for module, weight, pairs in zip(modules, weights, pairs_per_loss):
            s_f = [s_tap.outputs[s] for s, _ in pairs]
            t_f = [t_feats[t] for _, t in pairs if t]
            batch = {"labels": y, "inputs": x, "student": model, "teacher": teacher} if module.needs_batch else {}
            total = total + weight * module(s_logits, t_logits, s_f, t_f, s_emb, t_emb, **batch)
        return total

    def cleanup():
        s_tap.close()
        t_tap.close()
        for module in modules:
            if hasattr(module, "finish"):
                module.finish(student)
        if synthesizers:
            _recalibrate_on_synthetic(student, synthesizers[0], len(sample))

    loss_fn.modules = modules  # for callers that keep what a loss trained (DML's peer)
    return loss_fn, extra, cleanup


def _recalibrate_on_synthetic(student, synthesizer, batch: int, batches: int = 30) -> None:
    """BatchNorm statistics from synthetic batches: a data-free student never sees real images,
    not even for its normalisation statistics."""
    import torch

    with torch.no_grad():
        x = torch.cat([synthesizer.replay(64) for _ in range(batches)]).numpy()
    recalibrate_batchnorm(student, Split(x=x.astype(np.float32), y=np.zeros(len(x), dtype=np.int64)), 64, batches)
