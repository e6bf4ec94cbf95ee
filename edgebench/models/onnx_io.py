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


# ONNX element type -> numpy dtype name, for the types the runtimes take as model inputs.
ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool", 2: "uint8", 3: "int8"}


def declared_inputs(path: Path) -> list[tuple[str, tuple, str]]:
    """(name, dims, dtype) per graph input that is not an initializer, in model order. A dim is an
    int when fixed, else its symbolic name (str) or None."""
    graph = load_graph(path)
    initializers = {t.name for t in graph.initializer}
    out = []
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        dtype = ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise CorruptInputError(f"'{path}': input '{value.name}' has ONNX element type {tensor.elem_type}, "
                                    "which edgebench cannot feed")
        out.append((value.name, dims, dtype))
    return out


def declared_outputs(path: Path) -> list[tuple[str, tuple]]:
    """(name, dims) per graph output, in model order (dims as in `declared_inputs`)."""
    return [(v.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                           for d in v.type.tensor_type.shape.dim)) for v in load_graph(path).output]
