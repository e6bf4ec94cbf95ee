"""A deployable model file and the files that travel with it.

An OpenVINO IR is an .xml with its .bin; a large ONNX model keeps its weights in external-data
files beside it. Copying an artifact into a run folder, shipping it to a Ray node and reporting
its size all need the same list of files, so it is worked out here only.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def side_files(self) -> list[Path]:
        """The files the runtime reads beside `path`."""
        if self.path.suffix == ".xml":
            return [self.path.with_suffix(".bin")]
        if self.path.suffix == ".onnx":
            return [self.path.parent / name for name in _onnx_external_files(self.path)]
        return []

    @property
    def files(self) -> list[Path]:
        return [self.path, *self.side_files]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def copy_into(self, folder: Path) -> Artifact:
        """A copy of every file in `folder` (names kept); returns the copy."""
        folder.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            shutil.copyfile(f, folder / f.name)
        return Artifact(folder / self.path.name)

    def contents(self) -> dict[str, bytes]:
        """File name -> bytes, the main file first: what travels to another machine."""
        return {f.name: f.read_bytes() for f in self.files}


def _onnx_external_files(path: Path) -> list[str]:
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            names |= {e.value for e in tensor.external_data if e.key == "location"}
    return sorted(n for n in names if (path.parent / n).is_file())
