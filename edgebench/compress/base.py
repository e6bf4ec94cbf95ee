"""The Pass contract and the objects passes share.

A Pass turns one Candidate into another: `apply(candidate, ctx) -> Candidate`. Its parameters
are a pydantic `Config` declared on the class, validated before any work starts, so a bad value
is a one-line error rather than a failure twenty minutes into training. Every candidate carries
its lineage: the list of `{pass, config}` steps that made it from the baseline.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from edgebench.core.errors import UsageError

# Named training budgets: multipliers of every pass's default fine-tuning epochs.
BUDGETS = {"quick": 1.0, "standard": 3.0, "long": 10.0}


def parse_budget(value) -> float:
    """'quick' | 'standard' | 'long' or a positive multiplier, as a multiplier."""
    if isinstance(value, (int, float)):
        number = float(value)
    elif str(value) in BUDGETS:
        return BUDGETS[str(value)]
    else:
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"training budget '{value}' is not one of {', '.join(BUDGETS)} or a number") from None
    if not number > 0:
        raise UsageError(f"training budget must be positive, got {value}")
    return number


class PassConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Candidate:
    """A model on its way to deployment: a torch module (None once only runtime artifacts remain),
    the artifacts already built for it (format -> absolute path), and how it was made."""
    name: str
    module: Any = None
    lineage: tuple = ()
    precision: str = "fp32"
    artifacts: dict = field(default_factory=dict)
    notes: tuple = ()
    parent: Optional[str] = None

    def derive(self, made_by: Pass, **changes) -> Candidate:
        """The candidate `made_by` makes from this one. One naming rule for every pass: the pass's
        label after the baseline, `<this name>+<label>` after anything else (the builder then names
        a recipe's last candidate after the recipe)."""
        label = made_by.label()
        name = label if self.name == "baseline" else f"{self.name}+{label}"
        return replace(self, name=name, lineage=self.lineage + (made_by.step(),), parent=self.name, **changes)


@dataclass
class Context:
    """What passes may use: data, the baseline (default teacher), a place for files, a budget."""
    dataset: Any
    baseline: Candidate
    model_source: Any
    work_dir: Path  # a scratch folder for this pass's files, inside the run folder
    train_epochs: float = 1.0
    seed: int = 0
    budget: float = 1.0  # training-budget multiplier for passes that fine-tune (--budget quick=1)
    progress: Optional[Callable[[str, int, int], None]] = None
    export: Optional[Callable[[Candidate], dict]] = None  # candidate -> {format: path} of FP32 artifacts
    # count -> up to `count` feeds ({input name: array at the model's own shape}) from the user's
    # data: how passes calibrate a model whose inputs are not the built-in dataset's images.
    calibration: Optional[Callable[[int], list]] = None
    # The DeviceProfile the candidates are for (None: this machine): passes that build for an
    # instruction set (ONNX Runtime INT8) build for its, and record which.
    device: Any = None

    def report(self, label: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(label, done, total)


class Pass:
    name: ClassVar[str]
    Config: ClassVar[type[PassConfig]] = PassConfig
    needs_torch: ClassVar[bool] = True  # False for passes that work on exported artifacts only
    config: PassConfig  # subclasses narrow this to their own Config type

    def __init__(self, config: Optional[dict] = None):
        try:
            self.config = self.Config(**(config or {}))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            raise UsageError(f"pass '{self.name}': {where}: {err['msg']}") from None

    def check(self, candidate: Candidate, ctx: Context) -> Optional[str]:
        """Return a one-line reason if this pass does not apply to the candidate, else None."""
        if self.needs_torch and candidate.module is None:
            return f"{self.name} needs a torch model; '{candidate.name}' has none"
        return None

    def validate(self, model, dataset) -> None:
        """Raise a one-line EdgebenchError for a config that cannot work with `model` (an untrained
        instance of the source architecture) on `dataset`; runs before any training starts."""

    def apply(self, candidate: Candidate, ctx: Context) -> Candidate:
        raise NotImplementedError

    def label(self) -> str:
        """Short name of what this pass made, used in derived candidates' names (e.g. 'prune50')."""
        return self.name

    def step(self) -> dict:
        return {"pass": self.name, "config": self.config.model_dump()}
