"""Shallower transformer students, built from the teacher itself: DistilBERT's initialisation (keep
every other layer), for torchvision's VisionTransformer (encoder.layers of EncoderBlocks). Narrower
ones (DynaBERT's width sub-networks) are in transformer_width.py."""
from __future__ import annotations

import copy
from collections import OrderedDict

from edgebench.core.errors import IncompatibleError


def encoder_blocks(model) -> list:
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if layers is None or not len(layers) or not hasattr(layers[0], "self_attention"):
        raise IncompatibleError("transformer distillation needs a torchvision VisionTransformer "
                                "(encoder.layers of blocks with self_attention)")
    return list(layers)


def layer_map(teacher_layers: int, student_layers: int, mapping: str) -> list[int]:
    """The teacher layer each student layer learns from (and, for 'every-other', starts as).

    every-other (DistilBERT) and pkd-skip (Patient-KD) spread the student over the teacher's depth,
    PKD-skip ending on the last layer; pkd-last takes the teacher's top layers."""
    if not 0 < student_layers <= teacher_layers:
        raise IncompatibleError(f"a student of {student_layers} layers cannot come from a {teacher_layers}-layer teacher")
    step = teacher_layers / student_layers
    if mapping == "every-other":
        return [int(i * step) for i in range(student_layers)]
    if mapping == "pkd-last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    return [int(round((i + 1) * step)) - 1 for i in range(student_layers)]  # pkd-skip, tinybert


def shallow_copy(teacher, student_layers: int, init: str = "every-other"):
    """The teacher with `student_layers` of its blocks: every other one (DistilBERT) or, with
    init 'scratch', the same blocks re-initialised."""
    student = copy.deepcopy(teacher)
    keep = layer_map(len(encoder_blocks(teacher)), student_layers, "every-other")
    blocks = encoder_blocks(student)
    student.encoder.layers = type(student.encoder.layers)(
        OrderedDict((f"encoder_layer_{i}", blocks[k]) for i, k in enumerate(keep)))
    if init == "scratch":
        for m in student.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return student
