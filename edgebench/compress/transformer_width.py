"""Narrower transformer students, built from the teacher itself: DynaBERT's width sub-networks
(keep the most important attention heads and MLP neurons) of torchvision's VisionTransformer.

Kept apart from transformer_students.py because it defines a torch module, so it imports torch
when loaded; the tdistill pass imports it only when it builds a student."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.transformer_students import encoder_blocks


class HeadSubsetAttention(nn.Module):
    """Self-attention with fewer heads than the model width (torch's MultiheadAttention requires
    heads x head_dim == embed_dim), called like MultiheadAttention: (q, k, v, need_weights)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = heads, head_dim
        self.q, self.k, self.v = (nn.Linear(dim, heads * head_dim) for _ in range(3))
        self.out_proj = nn.Linear(heads * head_dim, dim)

    def forward(self, query, key, value, need_weights=False, **_):
        b, n, _d = query.shape
        q, k, v = (proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
                   for proj, x in ((self.q, query), (self.k, key), (self.v, value)))
        weights = F.softmax(q @ k.transpose(-1, -2) / self.head_dim ** 0.5, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
        return self.out_proj(out), (weights if need_weights else None)


def head_subset_attention(attn, heads: list[int]) -> HeadSubsetAttention:
    """`heads` of MultiheadAttention `attn`, with their weights."""
    dim, head_dim = attn.embed_dim, attn.embed_dim // attn.num_heads
    cols = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
    new = HeadSubsetAttention(dim, len(heads), head_dim)
    with torch.no_grad():
        for i, proj in enumerate((new.q, new.k, new.v)):
            proj.weight.copy_(attn.in_proj_weight[cols + i * dim])
            proj.bias.copy_(attn.in_proj_bias[cols + i * dim])
        new.out_proj.weight.copy_(attn.out_proj.weight[:, cols])
        new.out_proj.bias.copy_(attn.out_proj.bias)
    return new


def narrow(model, width: float):
    """DynaBERT-style width sub-network in place: each block keeps the `width` share of its
    attention heads (ranked by the norm of their output projection) and of its MLP neurons (by
    their weights' norms), as smaller dense layers. (DynaBERT also rewires the network by
    importance before training a width-adaptive supernet; here each sub-network is distilled on
    its own.)"""
    if width >= 1.0:
        return model
    for block in encoder_blocks(model):
        attn = block.self_attention
        heads, dim = attn.num_heads, attn.embed_dim
        keep_heads = max(1, int(round(heads * width)))
        score = attn.out_proj.weight.detach().view(dim, heads, dim // heads).norm(dim=(0, 2))
        block.self_attention = head_subset_attention(attn, sorted(score.argsort(descending=True)[:keep_heads].tolist()))
        up, down = block.mlp[0], block.mlp[3]
        keep = max(1, int(round(up.out_features * width)))
        neurons = (up.weight.detach().norm(dim=1) * down.weight.detach().norm(dim=0)).argsort(descending=True)[:keep]
        neurons = neurons.sort().values
        new_up, new_down = nn.Linear(up.in_features, keep), nn.Linear(keep, down.out_features)
        with torch.no_grad():
            new_up.weight.copy_(up.weight[neurons])
            new_up.bias.copy_(up.bias[neurons])
            new_down.weight.copy_(down.weight[:, neurons])
            new_down.bias.copy_(down.bias)
        block.mlp[0], block.mlp[3] = new_up, new_down
    return model
