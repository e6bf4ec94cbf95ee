"""A torch `module:factory` model that is not an image classifier, exported to ONNX by its inputs.

`compare pkg.mod:factory --input-shape input_ids=1x16 --input-shape attention_mask=1x16
--input-dtype input_ids=int64 --input-dtype attention_mask=int64` builds the module (the factory
is called without arguments), loads `--weights` if given, and exports it with those input names,
shapes and dtypes (the leading dim dynamic, as the batch). The ONNX file then goes through the
same path as any ONNX model: its inputs are resolved from the graph, fed from `--data`, timed on
ONNX Runtime and OpenVINO, quantized, and judged by agreement with FP32. The export is checked
against torch on the same sample before it is used.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.core.atomic import atomic_path
from edgebench.core.errors import IncompatibleError, UsageError
from edgebench.models.inputs import DTYPES
from edgebench.models.zoo import ModelSource, apply_weights, load_state_dict

OPSET = 17


def parse_input_dtypes(values: list[str]) -> dict[str, str]:
    """`NAME=int64` (repeatable) -> {name: dtype}."""
    out = {}
    for value in values:
        name, _, dtype = value.partition("=")
        if not name or dtype not in DTYPES:
            raise UsageError(f"--input-dtype '{value}': write NAME=DTYPE with DTYPE one of {', '.join(DTYPES)}")
        out[name] = dtype
    return out


def export_factory(source: ModelSource, shapes: dict[Optional[str], list[tuple]], dtypes: dict[str, str],
                   out: Path, weights: Optional[str] = None, trust: bool = False) -> Path:
    import torch

    if None in shapes:
        raise UsageError("a torch model's inputs need names: --input-shape NAME=1x3x224x224")
    named: dict[str, list[tuple]] = {str(n): v for n, v in shapes.items()}
    if source.factory is None:
        raise UsageError(f"'{source.spec}' is not a torch model factory")
    torch.manual_seed(0)
    try:
        module = source.factory()
    except TypeError as e:
        raise UsageError(f"'{source.spec}' must be callable without arguments to be exported by its inputs: {e}") from None
    if weights:
        apply_weights(module, load_state_dict(Path(weights), trust=trust), weights)
    module = module.eval()
    rng = np.random.default_rng(0)
    names = list(named)
    unknown = [n for n in dtypes if n not in named]
    if unknown:
        raise UsageError(f"--input-dtype names {', '.join(map(repr, unknown))}, which no --input-shape names")
    sample = {}
    for name in names:
        shape, dtype = named[name][0], dtypes.get(name, "float32")
        if np.issubdtype(np.dtype(dtype), np.integer) or dtype == "bool":
            sample[name] = np.ones(shape, dtype) if dtype == "bool" else rng.integers(0, 2, shape).astype(dtype)
        else:
            sample[name] = rng.standard_normal(shape).astype(dtype)
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    with torch.no_grad():
        try:
            expected = module(*args)
        except (RuntimeError, TypeError, ValueError, IndexError) as e:
            shown = ", ".join(f"{n}{list(sample[n].shape)}" for n in names)
            raise IncompatibleError(f"'{source.spec}' cannot take inputs {shown}: {str(e).splitlines()[0][:200]}") from None
    outputs = _flatten(expected)
    output_names = [f"output_{i}" for i in range(len(outputs))]
    axes = {n: {0: "batch"} for n in names} | {n: {0: "batch"} for n in output_names}
    with atomic_path(out) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(scratch), input_names=names, output_names=output_names,
                          dynamic_axes=axes, dynamo=False, opset_version=OPSET)
        _check(scratch, sample, [o.numpy() for o in outputs])
    return out


def _flatten(out) -> list:
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten(item)]
    return [out]


def _check(path: Path, sample: dict, expected: list[np.ndarray], rtol: float = 1e-3, atol: float = 1e-4) -> None:
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, sample)
    for i, (g, e) in enumerate(zip(got, expected)):
        worst = float(np.abs(g - e).max()) if e.size else 0.0
        if worst > atol + rtol * (np.abs(e).max() + 1e-12):
            raise IncompatibleError(f"ONNX export differs from torch by {worst:.3g} on output {i}")
