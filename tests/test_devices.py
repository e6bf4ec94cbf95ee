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
