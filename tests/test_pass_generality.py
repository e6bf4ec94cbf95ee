"""Passes beyond mobilenetv3: the crashes new users met on torchvision's family are one-line
declines or working candidates."""
import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compress.builder import _check_outputs
from edgebench.compress.channels import half_width_copy, prune_channels
from edgebench.compress.prune import PruneConfig
from edgebench.compress.qat import insert_fake_quant
from edgebench.core.errors import IncompatibleError
from edgebench.models.data import Dataset, Split
from edgebench.models.zoo import build_module, resolve_model


def _dataset(size: int, n: int = 4) -> Dataset:
    x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    split = Split(x=x, y=np.arange(n, dtype=np.int64) % 10)
    return Dataset(name="random", classes=[str(i) for i in range(10)], input_size=size,
                   train=split, eval=split, calib=split)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_models_with_auxiliary_heads_train_on_their_main_logits(name):
    model = build_module(resolve_model(name), 10).train()
    size = 75 if name == "inception_v3" else 32
    out = model(torch.randn(2, 3, size, size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


def test_a_vit_at_the_wrong_size_is_a_one_line_error_naming_the_size():
    with pytest.raises(IncompatibleError) as info:
        _check_outputs(build_module(resolve_model("vit_b_16"), 10), _dataset(32, 2))
    assert "224" in str(info.value) and "\n" not in str(info.value)


def test_qat_leaves_attention_projections_in_float():
    model = nn.Sequential(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), nn.Flatten(), nn.Linear(64, 10))
    names = insert_fake_quant(model)
    assert "0.self_attn.out_proj" not in names and "0.linear1" in names
    assert model(torch.randn(2, 4, 16)).shape == (2, 10)


def test_pruning_declines_transformers_with_a_reason():
    model = build_module(resolve_model("vit_b_16"), 10)
    with pytest.raises(IncompatibleError, match="attention heads"):
        prune_channels(model, _dataset(224, 2), PruneConfig())


def test_a_family_without_a_smaller_sibling_gets_a_half_width_student():
    model = build_module(resolve_model("tiny-cnn"), 10)
    before = sum(p.numel() for p in model.parameters())
    student = half_width_copy(model, _dataset(32))
    assert sum(p.numel() for p in student.parameters()) < 0.5 * before
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
