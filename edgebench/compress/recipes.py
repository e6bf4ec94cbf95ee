"""Compression passes and recipes.

A recipe is a named list of `{pass, config}` steps, written in YAML:

    name: prune50-ptq
    passes:
      - {pass: prune, config: {ratio: 0.5}}
      - {pass: ptq}

Passes: distill, prune, sparsify, separable, lowrank, ptq, qat (one module each). FP16/BF16 are precision
choices of the runtimes, not passes: every FP32 candidate is also timed at the reduced precisions
its runtime and processor support.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from edgebench.compress.base import Pass
from edgebench.compress.passes import PASSES
from edgebench.core.errors import CorruptInputError, NotFoundError, closest
from edgebench.models.zoo import build_module

# Built-in recipes that `compare` runs by default, in order; each is a list of steps. Together they
# cover every technique; recipes sharing a prefix share its work (prune50 feeds prune50-ptq).
DEFAULT_RECIPES: dict[str, list[dict]] = {
    "baseline": [],
    "ptq-int8": [{"pass": "ptq", "config": {}}],
    "qat-int8": [{"pass": "qat", "config": {}}],
    "distill": [{"pass": "distill", "config": {}}],
    "distill-ptq": [{"pass": "distill", "config": {}}, {"pass": "ptq", "config": {}}],
    "prune50": [{"pass": "prune", "config": {"ratio": 0.5}}],
    "prune50-ptq": [{"pass": "prune", "config": {"ratio": 0.5}}, {"pass": "ptq", "config": {}}],
    # Unstructured: zeros in unchanged shapes, so dense runtimes gain no speed (its note says so);
    # 0.5 epochs of recovery per budget unit, a third of prune's.
    "sparsify50": [{"pass": "sparsify", "config": {"sparsity": 0.5}}],
    "separable": [{"pass": "separable", "config": {}}],
    "lowrank": [{"pass": "lowrank", "config": {}}],
    # Declines every model but a torchvision ViT, in one line and without training (a skipped row).
    "tdistill": [{"pass": "tdistill", "config": {}}],
}


def parse_recipe(data, source: str) -> tuple[str, list[dict]]:
    if isinstance(data, list):
        data = {"name": Path(source).stem, "passes": data}
    if not isinstance(data, dict) or not isinstance(data.get("passes", None), list):
        raise CorruptInputError(f"recipe '{source}' must be a mapping with a 'passes' list")
    name = str(data.get("name") or Path(source).stem)
    steps = []
    for i, step in enumerate(data["passes"]):
        if isinstance(step, str):
            step = {"pass": step}
        if not isinstance(step, dict) or not isinstance(step.get("pass"), str):
            raise CorruptInputError(f"recipe '{source}': step {i + 1} needs a 'pass' name")
        config = step.get("config") or {}
        if not isinstance(config, dict):
            raise CorruptInputError(f"recipe '{source}': step {i + 1} config must be a mapping")
        steps.append({"pass": PASSES.canonical(step["pass"]), "config": config})
    return name, steps


def load_recipe(spec: str) -> tuple[str, list[dict]]:
    """A built-in recipe name, or a YAML file."""
    if spec in DEFAULT_RECIPES:
        return spec, DEFAULT_RECIPES[spec]
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise NotFoundError(f"recipe file '{path}' does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise CorruptInputError(f"recipe '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
        return parse_recipe(data, str(path))
    raise NotFoundError(f"unknown recipe '{spec}'{closest(spec, DEFAULT_RECIPES)}; give a built-in name or a .yaml file")


def instantiate(steps: list[dict]) -> list[Pass]:
    """Validate every step's config up front: bad configs fail before any training starts."""
    return [PASSES.get(s["pass"])(s.get("config")) for s in steps]


def validate_recipes(recipes: list[tuple[str, list[dict]]], source, dataset) -> None:
    """Check every recipe's configs, and the names and models they refer to, against an untrained
    instance of the model, so that a bad recipe is a one-line error before the baseline trains."""
    passes = [p for _, steps in recipes for p in instantiate(steps)]
    if not passes or not getattr(source, "is_torch", False):
        return
    import torch

    # Building this throwaway model must not draw from torch's global generator: the baseline's
    # initial weights (and so its cache key) would change with the recipes asked for.
    with torch.random.fork_rng(devices=[]):
        model = build_module(source, dataset.num_classes, dataset.input_size)
        for p in passes:
            p.validate(model, dataset)
