"""Small models of the kinds people bring from elsewhere, exported to ONNX inside the tests:
a detector with dynamic H and W, a classifier with a fixed non-square input, a two-input model,
a token-input transformer encoder (ids + attention mask, int64) and a keypoint regressor."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class Detector(nn.Module):
    """Per-pixel probabilities at the input's resolution, like a text detector's [N,1,H,W] map."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        return torch.sigmoid(self.head(self.body(x)))


class WideClassifier(nn.Module):
    """Fixed 24x40 (non-square) input, 5 class scores."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(16 * 6 * 10, 5)

    def forward(self, x):
        return self.fc(self.body(x))


class TwoInputs(nn.Module):
    """An image and a feature vector in; class scores and an embedding out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.feat = nn.Linear(8, 8)
        self.scores = nn.Linear(16, 4)
        self.embed = nn.Linear(16, 16)

    def forward(self, image, features):
        h = torch.cat([self.conv(image), torch.relu(self.feat(features))], dim=1)
        return self.scores(h), self.embed(h)


class TinyEncoder(nn.Module):
    """One transformer encoder block over token ids, with an attention mask (1 = token, 0 = pad)."""

    def __init__(self, vocab: int = 100, dim: int = 32, seq: int = 16):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.randn(1, seq, dim) * 0.02)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.dim = dim

    def forward(self, input_ids, attention_mask):
        h = self.tokens(input_ids) + self.positions
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / self.dim ** 0.5
        scores = scores + (1.0 - attention_mask[:, None, :].float()) * -1e4
        h = self.norm1(h + self.out(scores.softmax(-1) @ v))
        return self.norm2(h + self.ffn(h))


class KeypointRegressor(nn.Module):
    """Five (x, y) keypoints in [0, 1] from an image: an [N,10] output that is not class scores."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return torch.sigmoid(self.body(x))


def export(model: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
           dynamic_axes: dict) -> Path:
    torch.manual_seed(0)
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, dynamo=False, opset_version=17)
    return path


def build_all(folder: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "detector": export(Detector(), (torch.randn(1, 3, 32, 32),), folder / "det.onnx", ["x"], ["prob"],
                           {"x": {0: "N", 2: "H", 3: "W"}, "prob": {0: "N", 2: "H", 3: "W"}}),
        "wide": export(WideClassifier(), (torch.randn(1, 3, 24, 40),), folder / "wide.onnx", ["image"], ["scores"],
                       {}),
        "two_inputs": export(TwoInputs(), (torch.randn(1, 3, 16, 16), torch.randn(1, 8)), folder / "two.onnx",
                             ["image", "features"], ["scores", "embedding"],
                             {"image": {0: "batch"}, "features": {0: "batch"}}),
        "encoder": export(TinyEncoder(), (torch.randint(0, 100, (1, 16)), torch.ones(1, 16, dtype=torch.int64)),
                          folder / "encoder.onnx", ["input_ids", "attention_mask"], ["hidden"],
                          {"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}}),
        "keypoints": export(KeypointRegressor(), (torch.randn(1, 3, 32, 32),), folder / "kp.onnx", ["x"],
                            ["keypoints"], {"x": {0: "batch"}}),
    }
