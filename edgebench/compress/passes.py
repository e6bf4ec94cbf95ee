"""The registry of compression passes: one module per technique registers here; plugins register
through the `edgebench.passes` entry-point group."""
from __future__ import annotations

from edgebench.compress.base import Pass
from edgebench.compress.distill import DistillPass
from edgebench.compress.lowrank import LowRankPass
from edgebench.compress.prune import PrunePass
from edgebench.compress.ptq import PtqPass
from edgebench.compress.qat import QatPass
from edgebench.compress.separable import SeparablePass
from edgebench.compress.sparsify import SparsifyPass
from edgebench.compress.transformer_distill import TransformerDistillPass
from edgebench.core.registry import Registry

PASSES: Registry[type[Pass]] = Registry("compression pass", "edgebench.passes")
PASSES.add("ptq", PtqPass, aliases=("int8",))
PASSES.add("qat", QatPass)
PASSES.add("distill", DistillPass, aliases=("kd",))
PASSES.add("prune", PrunePass, aliases=("pruning",))
PASSES.add("separable", SeparablePass, aliases=("dws",))
PASSES.add("lowrank", LowRankPass, aliases=("svd",))

PASSES.add("sparsify", SparsifyPass, aliases=("unstructured", "magnitude-prune"))
PASSES.add("tdistill", TransformerDistillPass, aliases=("transformer-distill",))
