"""The benchmarks import edgebench lazily, inside their functions, so a moved or renamed name only
shows when someone runs a 40-minute benchmark. Check every such import resolves."""
import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def _edgebench_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edgebench":
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "edgebench":
                    yield alias.name, None


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    missing = []
    for module_name, name in _edgebench_imports(path):
        module = importlib.import_module(module_name)
        if name is None or hasattr(module, name):
            continue
        try:  # `from package import submodule`
            importlib.import_module(f"{module_name}.{name}")
        except ModuleNotFoundError:
            missing.append(f"{module_name}.{name}")
    assert not missing, f"{path.name} imports names that do not exist: {missing}"


def test_the_check_sees_a_missing_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from edgebench.core.cache import no_such_name\n")
    assert list(_edgebench_imports(bad)) == [("edgebench.core.cache", "no_such_name")]
    assert not hasattr(importlib.import_module("edgebench.core.cache"), "no_such_name")


RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def test_results_name_no_folder_of_the_machine_that_ran_them():
    """Committed results must not carry this machine's paths (temp folders, home, the checkout)."""
    import tempfile

    markers = {"/tmp/", tempfile.gettempdir() + "/", str(Path.home()) + "/",
               str(RESULTS.parent.parent) + "/"}
    offenders = [f"{p.name}: {m}" for p in sorted(RESULTS.glob("*")) if p.is_file()
                 for m in markers if m in p.read_text(errors="replace")]
    assert not offenders, offenders


def test_portable_takes_machine_paths_out():
    import sys

    sys.path.insert(0, str(RESULTS.parent))
    from portable import ROOT, portable

    data = {"run_dir": "/tmp/runs/model-host-1234", "cmd": [sys.executable, "-m", "x", str(ROOT / "benchmarks" / "a.py")],
            "n": 3}
    assert portable(data) == {"run_dir": "<tmp>/model-host-1234", "cmd": ["python", "-m", "x", "benchmarks/a.py"], "n": 3}
