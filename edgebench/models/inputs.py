"""What a model takes as input: one `InputSpec` per named input, at concrete shapes.

A model declares its inputs (an ONNX file in its graph; a torch `module:factory` through the
user's `--input-shape`), often with dynamic dimensions. Nothing is guessed silently: a dynamic
dimension gets its value from `--input-shape NAME=1x3x480x640` (OpenVINO benchmark_app's `-shape`
convention), from `--input-size` for the spatial dimensions of an image input, or is set to 1 when
it is the leading batch dimension; any other dynamic dimension is an error that lists them and
shows the flag to set. A fixed dimension is taken as it is, and a value that contradicts it is an
error rather than silently replaced.

Several values for one input (`--input-shape x=1x3x320x320 --input-shape x=1x3x640x640`) make
several *shape sets*: the same candidate measured once per set, reported side by side. Inputs
given once are broadcast to every set.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from edgebench.core.errors import IncompatibleError, UsageError

DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class InputSpec:
    """One named model input at a concrete shape. `layout` is NCHW or NHWC for an image input
    (3 or 1 channels), "" for anything else (token ids, masks, feature vectors, states)."""
    name: str
    shape: tuple
    dtype: str = "float32"
    layout: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise UsageError(f"input '{self.name}': dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")

    @property
    def is_image(self) -> bool:
        return self.layout in LAYOUTS

    @property
    def image_hw(self) -> Optional[tuple[int, int]]:
        if self.layout == "NCHW":
            return self.shape[2], self.shape[3]
        if self.layout == "NHWC":
            return self.shape[1], self.shape[2]
        return None

    @property
    def channels(self) -> Optional[int]:
        return {"NCHW": self.shape[1], "NHWC": self.shape[-1]}.get(self.layout) if self.is_image else None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), d.get("layout", ""))


def format_shape(shape: tuple) -> str:
    return "x".join(str(d) for d in shape)


def shape_label(specs: list[InputSpec]) -> str:
    """How a shape set is named in keys and reports: '1x3x48x320', or 'ids=1x16,mask=1x16'."""
    if len(specs) == 1:
        return format_shape(specs[0].shape)
    return ",".join(f"{s.name}={format_shape(s.shape)}" for s in specs)


def samples_bytes(specs: list[InputSpec]) -> int:
    return sum(s.nbytes for s in specs)


_SEQUENCE_NAME = re.compile(r"seq|len|time|token", re.IGNORECASE)
_SHAPE_RE = re.compile(r"^\d+(x\d+)*$")


def parse_input_shapes(values: list[str]) -> dict[Optional[str], list[tuple]]:
    """`NAME=1x3x48x320` (or `1x3x48x320` for a model with one input; commas separate several
    shapes for the same input), repeatable -> {name or None: [shape, ...]}."""
    out: dict[Optional[str], list[tuple]] = {}
    for value in values:
        name, _, text = value.rpartition("=") if "=" in value else (None, "", value)
        for part in text.replace(" ", "").lower().split(","):
            if not _SHAPE_RE.match(part) or any(int(d) == 0 for d in part.split("x")):
                raise UsageError(f"--input-shape '{value}': write NAME=1x3x224x224 (positive integers joined by x)")
            out.setdefault(name or None, []).append(tuple(int(d) for d in part.split("x")))
    return out


def guess_layout(shape_or_dims: tuple) -> str:
    """NCHW when the second dim is 1 or 3 channels, NHWC when the last is; "" otherwise."""
    if len(shape_or_dims) != 4:
        return ""
    if shape_or_dims[1] in (1, 3):
        return "NCHW"
    if shape_or_dims[3] in (1, 3):
        return "NHWC"
    return ""


def resolve_input_specs(declared: list[tuple[str, tuple, str]], asked: dict[Optional[str], list[tuple]],
                        input_size: Optional[int] = None, layouts: Optional[dict[str, str]] = None
                        ) -> list[list[InputSpec]]:
    """Concrete shape sets for declared inputs (name, dims with int/str/None, dtype)."""
    names = [d[0] for d in declared]
    asked = dict(asked)
    if None in asked:
        if len(declared) != 1:
            raise UsageError(f"the model has inputs {', '.join(names)}: name each one, e.g. "
                             f"--input-shape {names[0]}=...")
        asked[names[0]] = asked.pop(None) + asked.get(names[0], [])
    unknown = [n for n in asked if n not in names]
    if unknown:
        raise UsageError(f"--input-shape names {', '.join(map(repr, unknown))}, but the model's inputs are "
                         f"{', '.join(map(repr, names))}")
    counts = {len(v) for v in asked.values() if len(v) > 1}
    if len(counts) > 1:
        raise UsageError("inputs given several shapes must be given the same number of them (one per shape set)")
    sets = counts.pop() if counts else 1
    missing: list[str] = []
    examples: list[str] = []
    resolved: dict[str, list[tuple]] = {}
    for name, dims, _dtype in declared:
        shapes = asked.get(name)
        if shapes:
            for shape in shapes:
                _check_fits(name, dims, shape)
            resolved[name] = shapes * sets if len(shapes) == 1 else shapes
            continue
        shape, unresolved = _fill(dims, input_size)
        if unresolved:
            missing.append(f"{name} {_show(dims)} (dims {', '.join(unresolved)})")
            examples.append(f"--input-shape {name}=" + "x".join(
                str(d) if d > 0 else str(dims[i] or "N").upper() for i, d in enumerate(shape)))
        elif input_size is not None and guess_layout(dims) and _fixed_hw(dims) and input_size not in _fixed_hw(dims):
            raise IncompatibleError(f"input '{name}' has the fixed shape {_show(dims)}; --input-size {input_size} "
                                    f"contradicts it (leave --input-size out)")
        resolved[name] = [shape] * sets
    if missing:
        example = " ".join(examples)
        raise UsageError(f"dynamic input dimensions without a value: {'; '.join(missing)}. Set them with {example}")
    layouts = layouts or {}
    return [[InputSpec(name, resolved[name][i], dtype, layouts.get(name, guess_layout(resolved[name][i])))
             for name, _dims, dtype in declared] for i in range(sets)]


def _fixed_hw(dims: tuple) -> tuple:
    layout = guess_layout(dims)
    hw = dims[2:4] if layout == "NCHW" else dims[1:3]
    return tuple(d for d in hw if isinstance(d, int) and d > 0)


def _fill(dims: tuple, input_size: Optional[int]) -> tuple[tuple, list[str]]:
    """Fixed dims as they are, a dynamic leading batch as 1, dynamic image H/W from --input-size."""
    layout = guess_layout(tuple(d if isinstance(d, int) and d > 0 else -1 for d in dims))
    spatial = {2, 3} if layout == "NCHW" else {1, 2} if layout == "NHWC" else set()
    shape, unresolved = [], []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif i == 0 and len(dims) > 1 and not _SEQUENCE_NAME.search(str(d or "")):
            shape.append(1)  # a dynamic leading dim is the batch, measured at 1 (a sequence length is not)
        elif i in spatial and input_size:
            shape.append(input_size)
        else:
            shape.append(-1)
            unresolved.append(f"{i}:{d or '?'}")
    return tuple(shape), unresolved


def _check_fits(name: str, dims: tuple, shape: tuple) -> None:
    if len(dims) != len(shape):
        raise IncompatibleError(f"--input-shape {name}={format_shape(shape)} has {len(shape)} dims; "
                                f"the model's input '{name}' has {len(dims)}: {_show(dims)}")
    for i, (d, s) in enumerate(zip(dims, shape)):
        if isinstance(d, int) and d > 0 and d != s:
            raise IncompatibleError(f"--input-shape {name}={format_shape(shape)}: dim {i} of '{name}' is fixed "
                                    f"at {d} in the model ({_show(dims)})")


def _show(dims: tuple) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) and d > 0 else (d or "?") for d in dims) + "]"
