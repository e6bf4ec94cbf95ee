"""The CLI answers a bad argument without loading torch or a runtime: the modules every command
imports keep heavy packages inside the functions that use them (DESIGN.md), and the loss and pass
registries answer names without loading the torch code behind them."""
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "onnx", "openvino", "onnxruntime")


def loaded_after(code: str) -> list[str]:
    """The heavy packages in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("module", ["edgebench.compare", "edgebench.cli.app", "edgebench.compress"])
def test_importing_what_the_cli_imports_loads_no_heavy_package(module):
    assert loaded_after(f"import {module}") == []


def test_recipes_and_loss_names_are_checked_without_torch():
    code = """
from edgebench.compress import DEFAULT_RECIPES, instantiate
from edgebench.compress.distill import DistillPass
from edgebench.compress.losses import LOSSES, available_losses
from edgebench.core.errors import NotFoundError
for steps in DEFAULT_RECIPES.values():
    instantiate(steps)
assert {"kd", "fitnet", "dml", "datafree"} <= set(available_losses()) and "hint" in LOSSES
DistillPass({"losses": [{"name": "hint"}, {"name": "rkd"}]})
try:
    DistillPass({"losses": [{"name": "fitnett"}]})
except Exception as e:
    assert "fitnet" in str(e), e
else:
    raise AssertionError("an unknown loss name was accepted")
"""
    assert loaded_after(code) == []


def test_compare_refuses_an_option_before_loading_torch():
    """Options compare checks itself come before the host profile and the model lookup (which load
    every runtime and torchvision), so a bad one is a quick one-line error."""
    code = """
from edgebench.compare import CompareOptions, compare
from edgebench.core.errors import UsageError
try:
    compare(CompareOptions(model="nosuchmodel", processes=0))
except UsageError as e:
    assert "--processes" in str(e), e
else:
    raise AssertionError("--processes 0 was accepted")
"""
    assert loaded_after(code) == []


@pytest.mark.parametrize("old, new", [
    ("edgebench.compress.qat\nFakeQuantLayer", "edgebench.compress.fake_quant"),
    ("edgebench.compress.losses\nDistillLoss", "edgebench.compress.losses.base"),
])
def test_classes_that_moved_still_load_from_their_old_address(old, new):
    """A model saved before the move (a resumed run's model.pt) or a plugin written before it names
    the class at its old module: unpickling and importing from there still find it."""
    import pickle

    cls = pickle.loads(b"c" + old.encode() + b"\n.")  # a pickle's reference to a class, as torch.save writes one
    assert cls.__module__ == new and cls.__name__ == old.split("\n")[1]


def test_an_unknown_model_is_refused_before_any_runtime_loads():
    """The model is resolved before the host profile asks every runtime whether it is installed: a
    misspelt name costs torchvision's import, not the runtimes' (torch comes with torchvision)."""
    code = """
from edgebench.compare import CompareOptions, compare
from edgebench.core.errors import NotFoundError
try:
    compare(CompareOptions(model="nosuchmodel"))
except NotFoundError as e:
    assert "nosuchmodel" in str(e), e
else:
    raise AssertionError("an unknown model name was accepted")
"""
    assert not {"openvino", "onnxruntime"} & set(loaded_after(code))
