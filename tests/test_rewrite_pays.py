"""Rewrites where they pay: separable and lowrank decline, with the reason, on a model whose
convolutions are already depthwise or 1x1, and rewrite a model built of dense 3x3 convolutions;
Tucker-2 reproduces a convolution at full rank."""
import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compress import PASSES, Candidate, Context
from edgebench.compress.lowrank import factorise_tucker2
from edgebench.models.data import Dataset, Split
from edgebench.models.zoo import build_module, resolve_model


def _ctx(name: str, size: int, tmp_path) -> Context:
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    split = Split(x=x, y=np.zeros(2, dtype=np.int64))
    data = Dataset(name="random", classes=[str(i) for i in range(10)], input_size=size, train=split, eval=split,
                   calib=split)
    torch.manual_seed(0)
    base = Candidate("baseline", module=build_module(resolve_model(name), 10).eval())
    return Context(dataset=data, baseline=base, model_source=resolve_model(name), work_dir=tmp_path)


@pytest.mark.parametrize("pass_name", ["separable", "lowrank"])
def test_mobilenetv3_declines_both_rewrites_with_the_reason(pass_name, tmp_path):
    ctx = _ctx("mobilenet_v3_large", 224, tmp_path)
    config = {"rank_ratio": 0.25} if pass_name == "lowrank" else {}  # untrained spectra: force a rank that shrinks
    reason = PASSES.get(pass_name)(config).check(ctx.baseline, ctx)
    assert reason and reason.startswith(pass_name) and "\n" not in reason
    assert "estimated" in reason or "depthwise or 1x1" in reason, reason
    print(reason)


def test_resnet18_is_rewritten_where_dense_convolutions_dominate(tmp_path):
    ctx = _ctx("resnet18", 224, tmp_path)
    separable = PASSES.get("separable")({})
    assert separable.check(ctx.baseline, ctx) is None
    names = separable.targets(ctx.baseline.module, torch.from_numpy(ctx.dataset.train.x[:1]))
    assert len(names) >= 10 and "layer4.1.conv2" in names


def test_tucker2_is_exact_at_full_rank_and_smaller_at_low_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, stride=2, padding=1, bias=True)
    x = torch.randn(2, 16, 9, 9)
    full = factorise_tucker2(conv, None, 0.999999)
    assert full is None  # full rank keeps every parameter: nothing to gain, so no rewrite
    with torch.no_grad():  # a weight of Tucker rank (4, 4): reproduced exactly by rank-4 factors
        core = torch.randn(4, 4, 3, 3)
        conv.weight.copy_(torch.einsum("abyx,oa,ib->oiyx", core, torch.randn(24, 4), torch.randn(16, 4)))
    low = factorise_tucker2(conv, None, 0.9999)
    assert [m.out_channels for m in low] == [4, 4, 24]
    assert torch.allclose(low(x), conv(x), atol=1e-3)
    assert sum(p.numel() for p in low.parameters()) < conv.weight.numel() / 2
