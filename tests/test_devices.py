import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.backends.host import local_device
from edgebench.core.errors import CorruptInputError, NotFoundError
from edgebench.devices.profiles import all_profiles, get_profile, load_profile_file


def test_shipped_profiles_and_aliases():
    names = set(all_profiles())
    assert {"host", "jetson-orin-nano", "raspberry-pi-5", "intel-core-ultra-npu"} <= names
    assert get_profile("jetson").name == "jetson-orin-nano"
    assert get_profile("rpi5").name == "raspberry-pi-5"


def test_host_is_detected():
    here = local_device()
    assert here.name == "host" and "cpu" in here.processors
    assert "onnxruntime" in here.processors["cpu"].runtimes


def test_unknown_device_suggests():
    with pytest.raises(NotFoundError, match="did you mean 'jetson'"):
        get_profile("jetsn")


def test_malformed_profile_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: y\nprocessors:\n  cpu:\n    name: z\n    runtimes: [onnxruntime]\n")
    with pytest.raises(CorruptInputError, match="processors.cpu.precisions"):
        load_profile_file(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(CorruptInputError, match="not valid YAML"):
        load_profile_file(bad)


def test_this_machine_is_named_without_asking_the_runtimes():
    from edgebench.backends.host import local_device_name

    assert local_device_name() == local_device().name


def test_without_a_gpu_driver_torch_is_not_asked_for_the_gpu_name(monkeypatch):
    import edgebench.devices.host as host

    class Unaskable:
        def __getattr__(self, name):
            raise AssertionError(f"torch.{name} was asked")

    monkeypatch.setitem(sys.modules, "torch", Unaskable())
    monkeypatch.setattr(host, "gpu_driver_present", lambda: False)
    assert host.gpu_name() == "GPU"


def test_devices_command_does_not_import_torch_on_a_machine_without_a_gpu_driver():
    from edgebench.devices.host import gpu_driver_present

    if gpu_driver_present():
        pytest.skip("a GPU driver is present: torch is asked for the GPU's name")
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "edgebench.cli", "devices", "--json"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=root))
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "edgebench.cli.app" in imported and "torch" not in imported
