"""What each optional part of edgebench brings, and whether this install has it: `edgebench
backends` lists the missing ones on a light (measuring-only) install with the extra to add."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str
    modules: tuple[str, ...]  # importable when the part is installed
    extra: str
    brings: str

    def missing(self) -> list[str]:
        return [m for m in self.modules if not installed(m)]


def installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (a finder may refuse it outright)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


PARTS = (
    Part("compare", ("torch", "torchvision", "onnxscript", "nncf", "torch_pruning", "scipy", "mlxtend"), "edgebench[full]",
         "building candidates: training, compression passes (prune, distill, PTQ/QAT, ...), ONNX and IR export"),
    Part("report", ("jinja2", "plotly", "matplotlib", "pandas"), "edgebench[full]",
         "`edgebench report` and compare's report: HTML, charts, PNG/SVG, edgebench.load_run"),
    Part("gate", ("scipy",), "edgebench[full]", "`edgebench gate`'s statistics (Mann-Whitney)"),
    Part("litert-convert", ("litert_torch", "ai_edge_quantizer"), "edgebench[litert-convert]",
         "torch -> .tflite conversion and its INT8 variant, so LiteRT rows are planned"),
    Part("ray", ("ray",), "edgebench[ray]", "measuring on the devices of a Ray cluster (--ray-address)"),
)


def missing_parts() -> list[tuple[Part, list[str]]]:
    return [(p, m) for p in PARTS if (m := p.missing())]


def require_parts(command: str, *names: str) -> None:
    """A command that needs the full install says so in one line before it starts, rather than
    failing with an ImportError half-way (a light install measures copied runs, `edgebench measure`)."""
    from edgebench.core.errors import RuntimeUnavailableError

    missing = sorted({m for p in PARTS if p.name in names for m in p.missing()})
    if missing:
        raise RuntimeUnavailableError(f"`edgebench {command}` needs the full install (missing {', '.join(missing)}): "
                                      f"pip install 'edgebench[full]'; a light install measures a run built "
                                      f"elsewhere with `edgebench measure`")
