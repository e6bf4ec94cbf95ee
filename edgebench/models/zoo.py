"""Model zoo: registered names (torchvision's classification family plus short aliases),
ONNX files, `package.module:factory` callables, and checkpoints loaded safely.

No weights are downloaded. torchvision's pretrained weights are used only when they are already
in the local torch hub cache (`--pretrained`); otherwise the baseline is trained on the run's data.
"""
from __future__ import annotations

import functools
import importlib
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgebench.core.errors import CorruptInputError, IncompatibleError, NotFoundError, UntrustedInputError, UsageError
from edgebench.core.registry import Registry
from edgebench.models.onnx_io import load_model

# name -> factory(num_classes) -> nn.Module
MODELS: Registry[Callable] = Registry("model", "edgebench.models")

FRIENDLY_ALIASES = {
    "mobilenetv3": "mobilenet_v3_large", "mobilenetv3-large": "mobilenet_v3_large",
    "mobilenetv3-small": "mobilenet_v3_small", "mobilenetv2": "mobilenet_v2",
    "efficientnet-b0": "efficientnet_b0", "efficientnet-b1": "efficientnet_b1",
    "shufflenet": "shufflenet_v2_x1_0", "squeezenet": "squeezenet1_1", "mnasnet": "mnasnet1_0",
    "regnet": "regnet_y_400mf", "convnext": "convnext_tiny",
}
# The smaller sibling a distillation student defaults to.
STUDENT_OF = {"mobilenet_v3_large": "mobilenet_v3_small", "resnet50": "resnet18", "resnet34": "resnet18",
              "resnet18": "mobilenet_v3_small", "efficientnet_b0": "mobilenet_v3_small",
              "mobilenet_v2": "mobilenet_v3_small"}


def _register_torchvision() -> None:
    import torchvision

    aliases: dict[str, list[str]] = {}
    for alias, target in FRIENDLY_ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    for name in torchvision.models.list_models(module=torchvision.models):
        # A partial of a module-level function, not a closure: a model source is handed to the
        # build worker (compress/build_worker.py), so its factory must pickle.
        MODELS.add(name, functools.partial(_torchvision_model, name), aliases=tuple(aliases.get(name, ())))


def _torchvision_model(name: str, num_classes: int = 1000, **kwargs):
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def _tiny_cnn(num_classes: int = 10):
    """A few-layer CNN for tests: conv-bn-relu blocks, a depthwise block and a linear head."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def _tiny_cnn_small(num_classes: int = 10):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def _vit_tiny(num_classes: int = 10):
    """A 6-layer VisionTransformer for 32x32 inputs (patch 4, width 64, 4 heads): the teacher of
    the transformer-distillation examples and tests (`--input-size 32`)."""
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=4, hidden_dim=64, mlp_dim=128,
                             num_classes=num_classes)


# edgebench's own models, found without importing torchvision (no torchvision name has a hyphen).
BUILT_IN = {"vit-tiny": _vit_tiny, "tiny-cnn": _tiny_cnn, "tiny-cnn-small": _tiny_cnn_small}
for _name, _factory in BUILT_IN.items():
    MODELS.add(_name, _factory)
STUDENT_OF["tiny-cnn"] = "tiny-cnn-small"
_registered = False


def list_models(pattern: str = "*") -> list[str]:
    _ensure_registered()
    return MODELS.names(pattern)


def _ensure_registered() -> None:
    global _registered
    if not _registered:
        _registered = True
        _register_torchvision()


@dataclass
class ModelSource:
    """Where a model comes from. `factory` is None for an ONNX file (timing only, no training)."""
    name: str
    spec: str
    factory: Optional[Callable] = None
    onnx_path: Optional[Path] = None

    @property
    def is_torch(self) -> bool:
        return self.factory is not None


_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def resolve_model(spec: str) -> ModelSource:
    if spec.lower().endswith(".onnx"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise NotFoundError(f"model file '{path}' does not exist")
        check_onnx_file(path)
        return ModelSource(name=path.stem, spec=spec, onnx_path=path)
    if _FACTORY_RE.match(spec):
        module_name, attr = spec.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise NotFoundError(f"cannot import model factory '{spec}': {e}") from None
        return ModelSource(name=attr, spec=spec, factory=factory)
    if Path(spec).suffix in {".pt", ".pth", ".xml", ".engine", ".tflite"}:
        raise UsageError(f"'{spec}' is a weights or runtime file: pass a model name with --weights, or an .onnx file")
    if spec not in BUILT_IN:  # torchvision's import (2 s) is not needed to find our own tiny models
        _ensure_registered()
    canonical = MODELS.canonical(spec)
    return ModelSource(name=canonical, spec=spec, factory=MODELS.get(canonical))


def check_onnx_file(path: Path) -> None:
    """Parse and check an ONNX file before anything runs it; a damaged file gets one clear line."""
    import onnx

    model = load_model(path)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise CorruptInputError(f"'{path}' is not a valid ONNX model: {str(e).strip().splitlines()[0][:200]}") from None
    if not model.graph.input or not model.graph.output:
        raise CorruptInputError(f"'{path}' is not a valid ONNX model: it has no inputs or outputs")


def load_state_dict(path: Path, trust: bool = False) -> dict:
    """Load a checkpoint without running code from it unless the user said `--trust-checkpoint`."""
    import torch

    if not path.is_file():
        raise NotFoundError(f"weights file '{path}' does not exist")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise UntrustedInputError(
                f"'{path}' contains pickled code objects, refused; "
                "pass --trust-checkpoint only if you trust its author") from None
        raise CorruptInputError(f"'{path}' is not a readable checkpoint: {_unpickler_reason(e)}") from None
    except Exception as e:  # noqa: BLE001 - torch's unpickler raises anything (IndexError, KeyError...) on garbage
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptInputError(f"'{path}' is not a readable checkpoint: {msg[:200]}") from None
    if hasattr(obj, "state_dict") and trust:
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise CorruptInputError(f"'{path}' does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _unpickler_reason(e: Exception) -> str:
    """The specific reason inside torch's long weights_only error text."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        tail = [line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines() if line.strip()]
        if tail:
            return tail[0][:200]
    return text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__


def apply_weights(model, state: dict, source: str, partial: bool = False) -> tuple[list[str], list[str]]:
    """Load `state` into `model`; every tensor must match by name and shape unless `partial`, when
    missing ones keep their initial values and unexpected ones are ignored. Returns (missing, unexpected)."""
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if mismatched:
        k = mismatched[0]
        raise IncompatibleError(
            f"weights '{source}' do not fit the model: '{k}' has shape {tuple(state[k].shape)}, "
            f"model expects {tuple(own[k].shape)}")
    # BatchNorm's batch counter is bookkeeping, absent from many published checkpoints.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if (missing or unexpected) and not partial:
        raise IncompatibleError(f"weights '{source}' match the model only in part: {_key_list('missing', missing)}"
                                f"{'; ' if missing and unexpected else ''}{_key_list('unexpected', unexpected)}; "
                                f"pass --partial-weights to start the missing tensors from their initial values")
    if len(missing) == len(own):
        raise IncompatibleError(f"weights '{source}' do not fit the model: none of its {len(own)} tensors is in them")
    model.load_state_dict(state, strict=False)
    return missing, unexpected


def _key_list(what: str, keys: list[str], shown: int = 8) -> str:
    if not keys:
        return ""
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return f"{len(keys)} {what} ({', '.join(keys[:shown])}{more})"


def cached_pretrained_state(name: str) -> dict:
    """torchvision's default weights for `name`, from the local hub cache only; never downloads."""
    import torch
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise NotFoundError(f"torchvision has no pretrained weights for '{name}'") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise NotFoundError(
            f"pretrained weights for '{name}' are not in the local cache ({cached}); edgebench never downloads: "
            f"copy the file there or pass --weights PATH")
    return load_state_dict(cached)


def replace_classifier(model, num_classes: int) -> bool:
    """Swap the last Linear layer for one with `num_classes` outputs; True if it was swapped."""
    from torch import nn

    last_name, last = None, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_name, last = name, module
    if last is None or last_name is None or last.out_features == num_classes:
        return False
    parent = model.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else model
    setattr(parent, last_name.rsplit(".", 1)[-1], nn.Linear(last.in_features, num_classes))
    return True


def build_module(source: ModelSource, num_classes: int, input_size: Optional[int] = None):
    """An untrained instance of `source` scoring `num_classes`. `input_size` (the data's square
    image side) sizes the architectures built for one image size: torchvision's ViTs (their
    position embedding), when the size is a multiple of their patch; others ignore it."""
    factory = source.factory
    if factory is None:  # an ONNX file, e.g. named as a distill student or teacher
        raise UsageError(f"'{source.spec}' is an ONNX file, not a torch model: it cannot be built or trained")
    sized = _image_size_kwargs(source.name, input_size)
    try:
        model = factory(num_classes=num_classes, **sized)
    except TypeError:
        model = factory()
        replace_classifier(model, num_classes)
    return drop_auxiliary_heads(model)


def _image_size_kwargs(name: str, input_size: Optional[int]) -> dict:
    """torchvision's ViTs take `image_size`: built at the data's size, an untrained one runs on it
    (at 224 it rejects a 64-pixel input). Other sizes stay 224, so the model declines them."""
    patch = re.fullmatch(r"vit_[bhl]_(\d+)", name)
    if input_size and input_size != 224 and patch and input_size % int(patch.group(1)) == 0:
        return {"image_size": input_size}
    return {}


def drop_auxiliary_heads(model):
    """GoogLeNet and Inception v3 return (logits, aux logits) in training mode, which no loss here
    reads; their auxiliary classifiers are removed so training uses the main logits, as every
    deployed (eval-mode) copy of them does anyway."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for head in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, head):
                setattr(model, head, None)
    return model


def count_params_and_macs(model, input_shape: tuple) -> tuple[int, int]:
    import torch
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, torch.zeros(input_shape))
    model.train(was_training)
    return int(params), int(macs)
