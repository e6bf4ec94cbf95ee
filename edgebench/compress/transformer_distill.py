"""Transformer distillation with the layer mappings of the literature, for torchvision's
VisionTransformer: a shallower (and optionally narrower) student built from the teacher itself,
then trained with Hinton KD plus one of

  kd        logits only (DistilBERT's soft-target term; its init is `init: every-other`)
  pkd-skip  Patient-KD (Sun et al. 2019): the normalised [CLS] hidden state of each student layer
            matches teacher layers spread over its depth (every k-th, ending on the last)
  pkd-last  Patient-KD, matching the teacher's top layers instead
  tinybert  TinyBERT (Jiao et al. 2020): every token's hidden state and the attention map of each
            mapped layer (head-averaged, so students with fewer heads compare too)

`width` < 1 keeps that share of each block's heads and MLP neurons, by importance, DynaBERT-style:
recipes with several (layers, width) pairs give the sub-network candidates of one teacher.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.finetune import finetune, recovery_epochs
from edgebench.compress.transformer_students import encoder_blocks, layer_map, shallow_copy
from edgebench.core.cache import module_fingerprint

DEFAULT_EPOCHS = 1.0
HIDDEN_WEIGHT = {"kd": 0.0, "pkd-skip": 100.0, "pkd-last": 100.0, "tinybert": 1.0}  # PKD's beta; TinyBERT's 1


class TransformerDistillConfig(PassConfig):
    layers: int = Field(3, ge=1)
    width: float = Field(1.0, gt=0, le=1)
    init: Literal["every-other", "scratch"] = "every-other"
    loss: Literal["kd", "pkd-skip", "pkd-last", "tinybert"] = "tinybert"
    hidden_weight: Optional[float] = Field(None, ge=0)  # default per loss (HIDDEN_WEIGHT)
    temperature: float = Field(4.0, gt=0)
    epochs: Optional[float] = Field(None, ge=0)


class _Recorder:
    """Each block's output hidden states and, for TinyBERT, its attention input (ln_1's output)."""

    def __init__(self, blocks, attention: bool):
        self.blocks = blocks
        self.hidden: dict[int, Any] = {}  # block index -> its output
        self.attn_in: dict[int, Any] = {}  # block index -> its attention's input
        self.handles: list = []
        for i, block in enumerate(blocks):
            self.handles.append(block.register_forward_hook(lambda m, inp, out, i=i: self.hidden.__setitem__(i, out)))
            if attention:
                self.handles.append(block.self_attention.register_forward_pre_hook(
                    lambda m, args, i=i: self.attn_in.__setitem__(i, args[0])))

    def attention_map(self, i: int):
        x = self.attn_in[i]
        _, weights = self.blocks[i].self_attention(x, x, x, need_weights=True, average_attn_weights=False)
        return weights.mean(1)  # head-averaged: B x N x N

    def close(self):
        for h in self.handles:
            h.remove()


class TransformerDistillPass(Pass):
    name = "tdistill"
    Config = TransformerDistillConfig
    config: TransformerDistillConfig

    def label(self) -> str:
        width = f"-w{round(100 * self.config.width)}" if self.config.width < 1 else ""
        return f"vit{self.config.layers}l{width}-{self.config.loss}"

    def check(self, candidate: Candidate, ctx: Context):
        reason = super().check(candidate, ctx)
        if reason:
            return reason
        if not hasattr(getattr(candidate.module, "encoder", None), "layers"):
            return "tdistill: the model is not a torchvision VisionTransformer (encoder.layers)"
        # Model mismatches are declines here (a skipped row with the reason), not validate() errors:
        # tdistill is a default recipe, and a CNN or a shallow ViT must not abort the whole compare.
        teacher_layers = len(candidate.module.encoder.layers)
        if self.config.layers > teacher_layers:
            return f"tdistill: a {self.config.layers}-layer student cannot come from a {teacher_layers}-layer teacher"
        if self.config.layers >= teacher_layers and self.config.width >= 1:
            return f"tdistill: a {self.config.layers}-layer full-width student is not smaller than the teacher"
        return None

    def build_student(self, teacher):
        # Imported here, not at the top: transformer_width defines a torch module, and the CLI must
        # not load torch to parse a recipe or report a bad argument.
        from edgebench.compress.transformer_width import narrow

        return narrow(shallow_copy(teacher, self.config.layers, self.config.init), self.config.width)

    def objective(self, student, teacher):
        import torch
        import torch.nn.functional as F

        from edgebench.compress.losses.base import kd_term  # defines torch modules: loaded with torch, here

        loss, T = self.config.loss, self.config.temperature
        beta = HIDDEN_WEIGHT[loss] if self.config.hidden_weight is None else self.config.hidden_weight
        mapping = layer_map(len(encoder_blocks(teacher)), self.config.layers,
                            "pkd-last" if loss == "pkd-last" else "pkd-skip")
        s_rec = _Recorder(encoder_blocks(student), loss == "tinybert")
        t_rec = _Recorder(encoder_blocks(teacher), loss == "tinybert")

        def loss_fn(model, x, y):
            with torch.no_grad():
                t_logits = teacher(x)
                t_att = {j: t_rec.attention_map(j) for j in mapping} if loss == "tinybert" else {}
            s_logits = model(x)
            total = F.cross_entropy(s_logits, y) + kd_term(s_logits, t_logits, T)
            if beta:
                hidden = 0.0
                for i, j in enumerate(mapping):
                    s_h, t_h = s_rec.hidden[i], t_rec.hidden[j].detach()
                    if loss == "tinybert":
                        hidden = hidden + F.mse_loss(s_h, t_h) + F.mse_loss(s_rec.attention_map(i), t_att[j])
                    else:  # Patient-KD: normalised [CLS] states
                        hidden = hidden + (F.normalize(s_h[:, 0], dim=-1) - F.normalize(t_h[:, 0], dim=-1)).pow(2).sum(-1).mean()
                total = total + beta * hidden / len(mapping)
            return total

        def cleanup():
            s_rec.close()
            t_rec.close()

        return loss_fn, [], cleanup

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        teacher = candidate.module.eval()
        student = self.build_student(teacher)
        epochs = recovery_epochs(self.config.epochs, ctx, DEFAULT_EPOCHS)
        module = finetune(student, ctx, f"tdistill ({self.config.loss})", epochs,
                          ("tdistill", self.config.model_dump(), module_fingerprint(teacher)),
                          loss_factory=lambda s: self.objective(s, teacher))
        t_layers = len(encoder_blocks(teacher))
        init = (f"initialised from teacher layers {layer_map(t_layers, self.config.layers, 'every-other')}"
                if self.config.init == "every-other" else "initialised afresh")
        note = (f"{self.config.layers}-layer student of a {t_layers}-layer ViT ({init}, width {self.config.width:g}), "
                f"trained with {self.config.loss} for {epochs:g} epochs")
        return candidate.derive(self, module=module, notes=candidate.notes + (note,))
