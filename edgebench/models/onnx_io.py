"""Reading what an ONNX file declares (its inputs and outputs) without loading its weights."""
from __future__ import annotations

from pathlib import Path

from edgebench.core.errors import CorruptInputError


def load_graph(path: Path):
    """The graph of an ONNX file, weights left on disk; a damaged file is one clear line."""
    return load_model(path).graph


def load_model(path: Path):
    """An ONNX file's model proto, weights left on disk; a damaged file is one clear line."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and friends from protobuf
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptInputError(f"'{path}' is not a valid ONNX model: {first[:200]}") from None


def output_fits_classes(path: Path, num_classes: int) -> bool:
    """Whether the model's first output is N x `num_classes` class scores (so labels can score it)."""
    dims = load_graph(path).output[0].type.tensor_type.shape.dim
    return len(dims) == 2 and dims[1].dim_value == num_classes
