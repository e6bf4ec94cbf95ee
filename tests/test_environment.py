"""The environment fingerprint names the runtime version Python actually imports."""
from edgebench.measure.environment import module_version


def _dist(site, dist, version, module):
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text("")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n")


def test_a_shadowing_variant_of_a_runtime_is_the_version_recorded(tmp_path, monkeypatch):
    """onnxruntime-gpu first on the path, the CPU onnxruntime behind it: the GPU build's version,
    named as such, not the CPU package's that `importlib.metadata.version('onnxruntime')` gives."""
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    _dist(gpu, "fakert-gpu", "1.31.1", "fakert")
    _dist(cpu, "fakert", "1.30.0", "fakert")
    monkeypatch.syspath_prepend(str(cpu))
    monkeypatch.syspath_prepend(str(gpu))
    module_version.cache_clear()
    try:
        assert module_version("fakert") == "1.31.1 (fakert-gpu)"
    finally:
        module_version.cache_clear()


def test_the_namesake_distribution_is_recorded_plainly(tmp_path, monkeypatch):
    _dist(tmp_path, "plainrt", "2.0", "plainrt")
    monkeypatch.syspath_prepend(str(tmp_path))
    module_version.cache_clear()
    try:
        assert module_version("plainrt") == "2.0" and module_version("no_such_runtime_here") is None
    finally:
        module_version.cache_clear()
