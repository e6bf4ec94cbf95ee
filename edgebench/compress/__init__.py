"""The compression front end: passes (one module per technique), recipes that chain them, and the
builder that turns a model into stored candidates. See `recipes.py` for the recipe format."""
from __future__ import annotations

from edgebench.compress.base import Candidate, Context, Pass, PassConfig
from edgebench.compress.passes import PASSES
from edgebench.compress.recipes import DEFAULT_RECIPES, instantiate, load_recipe, parse_recipe, validate_recipes

__all__ = ["PASSES", "DEFAULT_RECIPES", "Candidate", "Context", "Pass", "PassConfig", "load_recipe",
           "instantiate", "parse_recipe", "validate_recipes"]
