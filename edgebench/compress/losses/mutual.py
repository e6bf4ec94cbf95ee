"""Mutual learning: two students trained together, each taught by the other's predictions."""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term


@register("dml", "mutual")
class DeepMutualLearning(DistillLoss):
    """Zhang et al. 2018: a peer (the student's architecture, initialised afresh) trains beside
    the student on the labels plus KL to the student's predictions, while the student learns from
    the peer's. Needs no teacher. The value is the peer's objective plus the student's KL term
    (the student's cross-entropy is the distill pass's `ce_weight` term). After training the peer
    is kept as `self.peer`; with option `keep: peer` the pass's candidate is the peer instead of the
    student (a second recipe with that option makes both candidates; each trains the pair)."""
    family = "mutual"
    needs_batch = True

    def __init__(self, s_shapes, t_shapes, temperature=1.0, peer_seed: int = 1, keep: str = "student", **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        if keep not in ("student", "peer"):
            from edgebench.core.errors import UsageError
            raise UsageError(f"distill loss 'dml': keep must be 'student' or 'peer', not {keep!r}")
        self.peer_seed, self.keep = peer_seed, keep
        self.peer: Optional[torch.nn.Module] = None  # made in setup

    def finish(self, student) -> None:
        """After training: hand over the peer's weights when the peer is the candidate asked for."""
        if self.keep == "peer":
            if self.peer is None:
                raise RuntimeError("distill loss 'dml': finish() before setup(), so there is no peer")
            student.load_state_dict(self.peer.state_dict())

    def setup(self, student, teacher, sample) -> None:
        peer = copy.deepcopy(student)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.peer_seed)
            for module in peer.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        self.peer = peer.train()

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, inputs=None, labels=None, **batch):
        p_logits = self.peer(inputs)
        peer_loss = kd_term(p_logits, s_logits.detach(), self.temperature)
        if labels is not None:
            peer_loss = peer_loss + F.cross_entropy(p_logits, labels)
        return kd_term(s_logits, p_logits.detach(), self.temperature) + peer_loss
