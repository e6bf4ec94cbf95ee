"""Knowledge distillation: a teacher (default: the baseline) trains a student.

The student is, by default, the model family's smaller sibling trained from scratch when the pass
starts from the baseline (mobilenetv3-small from mobilenetv3-large; where none is known, the same
architecture at half width, or at half depth where its channels cannot be removed), and the incoming candidate
itself when it follows another pass (prune -> distill recovers the pruned model's accuracy). The
objective is `ce_weight * CE(labels) + sum(weight_i * loss_i)` over losses from `losses.LOSSES`.

With a transfer set (`dataset.transfer`, from `--transfer-data`: unlabelled images), every epoch
also trains on its batches with the distillation losses alone (no labels, so no CE): the teacher's
soft targets on images the labels do not cover (Hinton et al. 2015). Losses that read labels (DML's
peer, BYOT's heads) use them on the labelled batches only. A data-free student ignores it: its
batches come from a generator.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Optional, Union

import numpy as np
from pydantic import Field, field_validator

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.channels import half_width_copy
from edgebench.compress.depth import half_depth_copy
from edgebench.compress.distill_objective import build_objective
from edgebench.compress.finetune import RECOVERY_LR, finetune, recovery_epochs
from edgebench.compress.losses import LOSSES, loss_class
from edgebench.compress.surgery import check_layer_names
from edgebench.compress.transfer_set import record_transfer, taught_on
from edgebench.core.cache import module_fingerprint
from edgebench.core.errors import IncompatibleError, UsageError
from edgebench.models.data import Split
from edgebench.models.train import TrainConfig
from edgebench.models.zoo import STUDENT_OF, apply_weights, build_module, load_state_dict, resolve_model

SCRATCH_LR = 2e-3  # a student trained from scratch uses the baseline's schedule
RECOVERY_EPOCHS = 0.5
# Default temperatures. A new, smaller student trained from scratch: T=1. At T=4 the soft-target term
# (weighted T^2) spends a capacity-limited student on matching the teacher's non-target logits: in the
# distillation benchmark (tiny-cnn on 1000 MNIST images, seed 0) Hinton KD at T=4 scored 85.2% against
# 89.8% without a teacher (T=8 77.1%, T=2 88.2%), at T=1 90.1%, and the same with a 2-epoch
# (89.4%) or a 10-epoch (96.5%) teacher. A model distilled into itself (recovery after prune,
# lowrank, separable) has the teacher's capacity and keeps Hinton's T=4.
SCRATCH_TEMPERATURE = 1.0
RECOVERY_TEMPERATURE = 4.0


class LossSpec(PassConfig):
    name: str
    weight: float = Field(default=1.0, ge=0)  # default= by name, so type checkers see it as optional
    layers: Union[str, list[tuple[str, str]]] = "auto"  # feature losses: "auto" or [[student, teacher], ...]
    options: dict = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        LOSSES.canonical(v)  # unknown names fail here, before any training (and without loading torch)
        return v

    @field_validator("layers")
    @classmethod
    def _auto(cls, v):
        if isinstance(v, str) and v != "auto":
            raise ValueError("layers must be 'auto' or a list of [student_layer, teacher_layer] pairs")
        return v


class DistillConfig(PassConfig):
    student: str = "auto"  # auto | self | a model name (trained from scratch under the teacher)
    teacher: str = "baseline"  # baseline | parent | a model name together with teacher_weights
    teacher_weights: Optional[str] = None
    losses: list[LossSpec] = Field(default_factory=lambda: [LossSpec(name="kd")], min_length=1)
    temperature: Optional[float] = Field(None, gt=0)  # default: SCRATCH_ or RECOVERY_TEMPERATURE
    ce_weight: float = Field(1.0, ge=0)
    epochs: Optional[float] = Field(None, ge=0)  # default: the baseline's epochs for a new student, 0.5 to recover
    lr: Optional[float] = Field(None, gt=0)


class DistillPass(Pass):
    name = "distill"
    Config = DistillConfig
    config: DistillConfig

    # ---- resolving the two models -----------------------------------------------------------

    def _new_student_name(self, candidate: Candidate, ctx: Context) -> Optional[str]:
        """The architecture of a student trained from scratch ("" for a half-width copy of the
        model where its family has no smaller sibling), or None to distill into the candidate."""
        if self.config.student == "self":
            return None
        if self.config.student != "auto":
            return self.config.student
        starts_from_baseline = candidate is ctx.baseline or candidate.name == "baseline"
        if not starts_from_baseline:
            return None
        return STUDENT_OF.get(getattr(ctx.model_source, "name", ""), "")

    def check(self, candidate: Candidate, ctx: Context):
        reason = super().check(candidate, ctx)
        if reason:
            return reason
        if self.config.teacher == "baseline" and ctx.baseline.module is None:
            return "distill: the baseline has no torch model to teach with"
        return None

    def _teacher(self, candidate: Candidate, ctx: Context, num_classes: int):
        if self.config.teacher == "baseline":
            return ctx.baseline.module
        if self.config.teacher == "parent":
            return candidate.module
        return load_teacher(self.config.teacher, self.config.teacher_weights, num_classes, ctx.dataset)

    def validate(self, model, dataset) -> None:
        if self.config.student not in ("auto", "self"):
            student = build_module(resolve_model(self.config.student), dataset.num_classes, dataset.input_size)
        else:
            student = model
        teacher = model
        if self.config.teacher not in ("baseline", "parent"):
            teacher = load_teacher(self.config.teacher, self.config.teacher_weights, dataset.num_classes, dataset)
        for spec in self.config.losses:
            if not isinstance(spec.layers, str):
                check_layer_names(student, [s for s, _ in spec.layers], "distill student")
                check_layer_names(teacher, [t for _, t in spec.layers], "distill teacher")

    # ---- training ----------------------------------------------------------------------------

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        data_free = any(loss_class(s.name).family == "datafree" for s in self.config.losses)
        transfer_unused = data_free and ctx.dataset.transfer is not None
        if data_free:  # from here on no code path can hand a training image or label to anything
            ctx = replace(ctx, dataset=imageless(ctx.dataset))
        num_classes = ctx.dataset.num_classes
        teacher = self._teacher(candidate, ctx, num_classes).eval()
        arch = self._new_student_name(candidate, ctx)
        if arch is not None:
            import torch

            torch.manual_seed(ctx.seed)  # the same initial student with or without a teacher
            if arch:
                student = build_module(resolve_model(arch), num_classes, ctx.dataset.input_size)
            else:  # no smaller sibling known: the same architecture at half width, or else at half depth
                student, arch = smaller_copy(ctx.model_source, ctx.dataset)
            epochs = recovery_epochs(self.config.epochs, ctx, ctx.train_epochs)
            lr = self.config.lr or SCRATCH_LR
        else:
            student = copy.deepcopy(candidate.module)
            epochs = recovery_epochs(self.config.epochs, ctx, RECOVERY_EPOCHS)
            lr = self.config.lr or RECOVERY_LR
        epochs = _step_floor(epochs, self.config.losses, ctx)
        _check_classes(teacher, ctx.dataset, "teacher")
        losses = "+".join(s.name for s in self.config.losses)
        transfer = ctx.dataset.transfer
        key = ("distill", self.config.model_dump(), arch, self.temperature(arch is not None), module_fingerprint(teacher))
        module = finetune(student, ctx, f"distill ({losses})", epochs,
                          key + ((("grayscale", ctx.dataset.grayscale),) if data_free else ()),
                          loss_factory=lambda s: self.objective(s, teacher, ctx.dataset.train.x[:2],
                                                                new_student=arch is not None,
                                                                grayscale=ctx.dataset.grayscale), lr=lr,
                          transfer=transfer)
        student_is = f"a new {arch}" if arch else f"'{candidate.name}'"
        notes: tuple[str, ...] = (f"{student_is} distilled from {self.config.teacher} with {losses}{taught_on(transfer)}, "
                                  f"{epochs:g} epochs",)
        if data_free:
            notes += ("data-free: the student learned only from generator-made inputs, no training image"
                      + (" (the transfer set unused)" if transfer_unused else ""),)
        derived = candidate.derive(self, module=module, notes=candidate.notes + notes)
        return record_transfer(derived, transfer, teacher, ctx)

    def temperature(self, new_student: bool) -> float:
        """The configured temperature, else the default for a new student or for recovery."""
        if self.config.temperature is not None:
            return self.config.temperature
        return SCRATCH_TEMPERATURE if new_student else RECOVERY_TEMPERATURE

    def objective(self, student, teacher, sample, new_student: bool = False, grayscale: bool = False):
        """The loss function, the adapter parameters that train with the student, and a cleanup.
        `grayscale`: the inputs are grayscale scans in 3 channels, which a data-free generator, seeing
        no image, is told (its `gray` option) unless the loss's options say otherwise."""
        update: dict = {"temperature": self.temperature(new_student)}
        if grayscale:
            update["losses"] = [s.model_copy(update={"options": {"gray": True, **s.options}})
                                if loss_class(s.name).family == "datafree" else s for s in self.config.losses]
        return build_objective(self.config.model_copy(update=update), student, teacher, sample)


def _step_floor(epochs: float, losses: list[LossSpec], ctx: Context) -> float:
    """Epochs raised so that training runs at least the steps a loss needs (times the budget): a
    data-free student's batches come from a generator, so the few training images do not pace it."""
    steps = max(loss_class(s.name).min_steps(s.options) for s in losses) * ctx.budget
    if steps <= 0 or epochs <= 0:  # no floor, or no training asked for
        return epochs
    per_epoch = max(1, len(ctx.dataset.train) // TrainConfig.batch_size)
    return max(epochs, steps / per_epoch)


def imageless(dataset):
    """`dataset` with every image zero and every label 0, and no transfer set: the same name,
    classes, shapes and number of training images (which set the epochs' steps). A data-free student
    trains on it, so no code path can give it, its BatchNorm statistics or its loss a real image."""
    def blank(n: int) -> Split:
        return Split(np.zeros((n, *dataset.input_shape[1:]), np.float32), np.zeros(n, np.int64))

    return replace(dataset, train=blank(len(dataset.train)), calib=blank(2), eval=blank(2), transfer=None)


def smaller_copy(source, dataset):
    """(student, what it is) for a family without a smaller sibling: the architecture at half
    width (DepGraph), or, where its channels cannot be removed (channel shuffles, windowed
    attention), at half depth; a one-line error when neither can be built."""
    import torch

    def fresh():
        return build_module(source, dataset.num_classes, dataset.input_size)

    try:
        return half_width_copy(fresh(), dataset), f"half-width {source.name}"
    except IncompatibleError as narrow:
        try:
            student, dropped = half_depth_copy(fresh(), torch.from_numpy(dataset.train.x[:2]), dataset.num_classes)
        except IncompatibleError as shallow:
            raise IncompatibleError(f"distill: no smaller student of {source.name} is known or can be built: "
                                    f"not at half width ({narrow}), not at half depth ({shallow})") from None
        return student, f"half-depth {source.name} ({len(dropped)} blocks removed)"


def load_teacher(spec: str, weights: Optional[str], num_classes: int, dataset):
    """A teacher given by name: its architecture with the user's weights, checked to score the
    dataset's classes."""
    from pathlib import Path

    if not weights:
        raise UsageError(f"distill: teacher '{spec}' needs teacher_weights (a state dict), or use teacher: baseline")
    state = load_state_dict(Path(weights))
    head = [k for k, v in state.items() if v.ndim == 2][-1:] if state else []
    if head and state[head[0]].shape[0] != num_classes:
        raise IncompatibleError(f"distill: teacher '{spec}' outputs {state[head[0]].shape[0]} classes but the "
                                f"dataset has {num_classes}")
    model = build_module(resolve_model(spec), num_classes)
    apply_weights(model, state, weights)
    _check_classes(model, dataset, "teacher")
    return model.eval()


def _check_classes(model, dataset, what: str) -> None:
    import torch

    with torch.no_grad():
        out = model.eval()(torch.from_numpy(dataset.train.x[:2]))
    if out.ndim != 2 or out.shape[1] != dataset.num_classes:
        raise IncompatibleError(f"distill: the {what} outputs shape {tuple(out.shape)} but the dataset has "
                                f"{dataset.num_classes} classes")


def kd_recovery(parent, ctx: Context, temperature: Optional[float] = None):
    """Loss factory for `finetune` that recovers a rewritten model by distilling from `parent`,
    the model before the rewrite (shared by prune, separable and lowrank)."""
    config: dict = {"student": "self", "losses": [{"name": "kd"}]}
    if temperature is not None:
        config["temperature"] = temperature
    kd = DistillPass(config)
    return lambda student: kd.objective(student, parent, ctx.dataset.train.x[:2])
