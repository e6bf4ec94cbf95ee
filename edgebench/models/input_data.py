"""Where a model's input data come from, produced one sample (one feed dict) at a time.

A *feed* is `{input name: array at that input's shape and dtype}`: what `Runner.infer` takes.
Sources (`--data`):

- `imagefolder:PATH`: image files (any depth), each resized to the input's H x W by `--resize`
  (`resize` stretches, `center-crop` keeps the aspect and crops, `letterbox` keeps it and pads
  with 114 grey), as RGB or BGR, then `(pixel - mean) / scale` with mean/scale in 0..255 pixel
  units as OpenVINO's `--mean_values` / `--scale_values`, then laid out NCHW or NHWC.
- `npz:PATH` / `npy:PATH`: recorded application inputs; an .npz keyed by input name, each array
  [samples, *input shape] (or exactly the input shape for one sample); an .npy for a one-input
  model. Arrays are memory-mapped where numpy allows, and cast to the input's dtype.
- `mnist` / `digits`: the built-in scans as images, for image inputs (labels are used only for a
  model edgebench built for them, never for a third-party model).
- `random` / `constant`: synthetic data, only when asked for by name; quality is then not measured
  and every report says so.

Nothing is materialised beyond the samples asked for: images are decoded and resized one by one.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.core.errors import CorruptInputError, NotFoundError, UsageError
from edgebench.models.inputs import InputSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
# ImageNet statistics in pixel units: what the built-in data have always been normalised with.
IMAGENET_MEAN_PX = (123.675, 116.28, 103.53)
IMAGENET_SCALE_PX = (58.395, 57.12, 57.375)
SYNTHETIC = ("random", "constant")


@dataclass(frozen=True)
class Preprocess:
    resize: str = "resize"  # resize | center-crop | letterbox
    mean: Optional[tuple] = None  # pixel units, per channel (or one value)
    scale: Optional[tuple] = None
    bgr: bool = False

    def describe(self) -> str:
        return (f"{self.resize}, {'BGR' if self.bgr else 'RGB'}, mean {list(self.mean or (0,))}, "
                f"scale {list(self.scale or (1,))}")


def parse_values(text: Optional[str]) -> Optional[tuple]:
    """'123.7,116.3,103.5' or '[123.7,116.3,103.5]' -> a tuple of floats."""
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.strip("[] ").split(",") if v.strip())
    except ValueError:
        raise UsageError(f"'{text}' is not a comma-separated list of numbers") from None


def describe_source(spec: str) -> str:
    return spec.split(":", 1)[0] if ":" in spec else spec


def measures_quality(spec: str) -> bool:
    return spec not in SYNTHETIC


def feeds(spec: str, specs: list[InputSpec], count: int, preprocess: Preprocess = Preprocess(),
          seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Up to `count` feeds from the data source `spec` (fewer when the source holds fewer)."""
    if spec in SYNTHETIC:
        rng = np.random.default_rng(seed)
        for _ in range(count):
            yield {s.name: _synthetic(s, rng, spec == "constant") for s in specs}
        return
    if spec.startswith(("npz:", "npy:")):
        yield from _array_feeds(Path(spec.split(":", 1)[1]).expanduser(), specs, count)
        return
    if not spec.startswith("imagefolder:") and spec not in ("mnist", "digits"):
        raise NotFoundError(f"unknown data source '{spec}': use imagefolder:PATH, npz:FILE, npy:FILE, mnist, "
                            f"digits, random or constant")
    images = [s for s in specs if s.is_image]
    others = [s for s in specs if not s.is_image]
    if others:
        raise UsageError(f"input {', '.join(repr(s.name) for s in others)} is not an image "
                         f"({', '.join(str(list(s.shape)) for s in others)}); pass --data npz:FILE with arrays keyed "
                         f"by input name, or --data random for timing only")
    if spec.startswith("imagefolder:"):
        pictures = _image_files(Path(spec.split(":", 1)[1]).expanduser())
    else:
        pictures = _builtin_pictures(spec)
        preprocess = Preprocess(preprocess.resize, preprocess.mean or IMAGENET_MEAN_PX,
                                preprocess.scale or IMAGENET_SCALE_PX, preprocess.bgr)
    for picture in pictures[:count]:
        rgb = picture() if callable(picture) else _read_image(picture)
        yield {s.name: _image_batch(rgb, s, preprocess) for s in images}


def _synthetic(s: InputSpec, rng: np.random.Generator, constant: bool) -> np.ndarray:
    if s.dtype == "bool":
        return np.ones(s.shape, bool) if constant else rng.random(s.shape) < 0.5
    if np.issubdtype(np.dtype(s.dtype), np.integer):
        # Token ids, indices: small non-negative values that are valid for any embedding table.
        return np.ones(s.shape, s.dtype) if constant else rng.integers(0, 2, s.shape).astype(s.dtype)
    return np.full(s.shape, 0.5, s.dtype) if constant else rng.standard_normal(s.shape).astype(s.dtype)


def _array_feeds(path: Path, specs: list[InputSpec], count: int) -> Iterator[dict[str, np.ndarray]]:
    if not path.is_file():
        raise NotFoundError(f"data file '{path}' does not exist")
    try:
        if path.suffix == ".npy":
            if len(specs) != 1:
                raise UsageError(f"'{path}' is one array but the model has {len(specs)} inputs: use an .npz keyed "
                                 f"by {', '.join(s.name for s in specs)}")
            arrays = {specs[0].name: np.load(path, mmap_mode="r")}
        else:
            arrays = np.load(path)
    except (ValueError, OSError) as e:
        raise CorruptInputError(f"cannot read '{path}': {e}") from None
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise UsageError(f"'{path}' has no array for input {', '.join(map(repr, missing))} "
                         f"(it has {', '.join(map(repr, list(arrays)))})")
    stacks = {}
    for s in specs:
        a = arrays[s.name]
        if tuple(a.shape) == s.shape:
            a = a[None]
        if tuple(a.shape[1:]) != s.shape:
            raise UsageError(f"'{path}': array '{s.name}' has shape {list(a.shape)}; input '{s.name}' is measured "
                             f"at {list(s.shape)} (store [samples, *shape])")
        stacks[s.name] = a
    n = min(len(a) for a in stacks.values())
    for i in range(min(n, count)):
        # np.array, not ascontiguousarray: that would turn a scalar input (a sample rate) into 1-d.
        yield {s.name: np.array(stacks[s.name][i], dtype=s.dtype, order="C") for s in specs}


def _image_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise NotFoundError(f"image folder '{root}' does not exist")
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"image folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _builtin_pictures(name: str) -> list:
    from edgebench.models.data import builtin_gray

    gray, _labels, _classes = builtin_gray(name)
    return [lambda g=g: np.repeat((g * 255).astype(np.uint8)[:, :, None], 3, axis=2) for g in gray]


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise CorruptInputError(f"cannot read image '{path}': {e}") from None


def _image_batch(rgb: np.ndarray, s: InputSpec, p: Preprocess) -> np.ndarray:
    """One H x W x 3 uint8 picture -> the input's shape (repeated over its batch)."""
    from PIL import Image

    if s.image_hw is None:
        raise UsageError(f"input '{s.name}' is not an image (shape {list(s.shape)}); give npz: data for it")
    h, w = s.image_hw
    im = Image.fromarray(rgb)
    if p.resize == "center-crop":
        ratio = max(h / im.height, w / im.width)
        im = im.resize((max(w, round(im.width * ratio)), max(h, round(im.height * ratio))), Image.Resampling.BILINEAR)
        left, top = (im.width - w) // 2, (im.height - h) // 2
        im = im.crop((left, top, left + w, top + h))
    elif p.resize == "letterbox":
        ratio = min(h / im.height, w / im.width)
        inner = im.resize((max(1, round(im.width * ratio)), max(1, round(im.height * ratio))), Image.Resampling.BILINEAR)
        im = Image.new("RGB", (w, h), (114, 114, 114))
        im.paste(inner, ((w - inner.width) // 2, (h - inner.height) // 2))
    else:
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    x = np.asarray(im, dtype=np.float32)
    if p.bgr:
        x = x[:, :, ::-1]
    if s.channels == 1:
        x = x.mean(axis=2, keepdims=True)
    if p.mean is not None:
        x = x - np.asarray(p.mean, np.float32)[: x.shape[2]]
    if p.scale is not None:
        x = x / np.asarray(p.scale, np.float32)[: x.shape[2]]
    if s.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.broadcast_to(x, s.shape).astype(s.dtype)
