"""Compression passes and recipes.

A recipe is a named list of `{pass, config}` steps, written in YAML:

    name: prune50-ptq
    passes:
      - {pass: prune, config: {ratio: 0.5}}
      - {pass: ptq}
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import CorruptInputError, NotFoundError, UsageError
from ..registry import Registry
from .base import Candidate, Context, Pass, PassConfig
from .ptq import PtqPass

PASSES: Registry[type[Pass]] = Registry("compression pass", "edgebench.passes")
PASSES.add("ptq", PtqPass, aliases=("int8",))

# Built-in recipes that `compare` runs by default, in order; each is a list of steps.
DEFAULT_RECIPES: dict[str, list[dict]] = {
    "baseline": [],
    "ptq-int8": [{"pass": "ptq", "config": {}}],
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
    from ..errors import closest
    raise NotFoundError(f"unknown recipe '{spec}'{closest(spec, DEFAULT_RECIPES)}; give a built-in name or a .yaml file")


def instantiate(steps: list[dict]) -> list[Pass]:
    """Validate every step's config up front: bad configs fail before any training starts."""
    return [PASSES.get(s["pass"])(s.get("config")) for s in steps]


__all__ = ["PASSES", "DEFAULT_RECIPES", "Candidate", "Context", "Pass", "PassConfig", "load_recipe",
           "instantiate", "parse_recipe"]
