"""Planner inputs for tests that plan without building a run: one built-in shape set."""
from pathlib import Path

from edgebench.measure.run_inputs import RunInputs, ShapeSet


def built_in_inputs(eval_path: Path, labelled: bool = True) -> RunInputs:
    return RunInputs([ShapeSet(None, [], Path(eval_path))], "digits", labelled=labelled)
