"""What Torch-Pruning cannot handle: the errors it raises on an architecture it cannot follow, and
the architectures it must not be run on at all."""
from __future__ import annotations

from typing import Optional

# What Torch-Pruning raises on an architecture it cannot handle (a ZeroDivisionError in its
# channel-shuffle grouping, assertions and NotImplementedError on unsupported couplings, shape
# RuntimeErrors from the traced forward): a decline with the reason, not a bug report.
TORCH_PRUNING_ERRORS = (AssertionError, NotImplementedError, ValueError, ZeroDivisionError, RuntimeError)


def unprunable_reason(model) -> Optional[str]:
    """Why Torch-Pruning should not be run on `model` at all, or None.

    Windowed attention with a relative-position bias table (torchvision's Swin and Swin V2; MaxViT
    keeps one too): on swin_t at 64 px, MetaPruner's grouping (get_all_groups, following index
    mappings through the window partition's reshapes and permutes) was still running after 100 s at
    3.7 GB and reached 15 GB, without end. Torch-Pruning also takes the table for an unwrapped
    parameter whose last dimension it would prune, but that dimension counts heads, not channels."""
    # Swin keeps a learned table, Swin V2 an MLP over a coordinates table (cpb_mlp): both index it with
    # a relative_position_index buffer, which is what marks the windowed attention here.
    tables = [name for name, _ in [*model.named_parameters(), *model.named_buffers()]
              if name.endswith(("relative_position_bias_table", "relative_position_index"))]
    if not tables:
        return None
    return (f"Torch-Pruning cannot prune windowed attention with a relative-position bias ({tables[0]}"
            f"{f' and {len(tables) - 1} more' if len(tables) > 1 else ''}: Swin-style shifted windows), its "
            f"dependency graph grows without end on the window partition")
