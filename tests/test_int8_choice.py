"""Which INT8 weights ONNX Runtime gets, by the target device's CPU (edgebench/compress/ptq.py)."""
import pytest

from edgebench.compress.ptq import onnx_weight_choice
from edgebench.devices.host import host_u8s8_saturates, u8s8_saturates
from edgebench.devices.profiles import DeviceProfile, get_profile


@pytest.mark.parametrize("isa, machine, saturates", [
    ({"sse4_1", "avx2"}, "x86_64", True),  # this machine's kind: AMD EPYC, AVX2, no VNNI
    ({"sse4_1", "avx2", "avx512bw"}, "x86_64", True),  # Skylake-SP: AVX-512 without VNNI
    ({"sse4_1", "avx2", "avx512bw", "avx512_vnni"}, "x86_64", False),
    ({"sse4_1", "avx2", "avx_vnni"}, "x86_64", False),
    ({"asimddp"}, "aarch64", False),
    (set(), "aarch64", False),
])
def test_u8s8_saturates_on_x86_without_vnni_only(isa, machine, saturates):
    assert u8s8_saturates(isa, machine) is saturates


def _cpu_profile(isa):
    return DeviceProfile(name="box", description="a CPU box", detect={"cpu_model_regex": "^no such cpu$"},
                         processors={"cpu": {"name": "cpu", "runtimes": ["onnxruntime"], "precisions": ["int8"],
                                             "isa": isa}})


def test_weights_follow_the_target_cpu_and_say_why():
    host = onnx_weight_choice("auto", None)
    assert host.reduce_range is host_u8s8_saturates() and host.built_for.startswith("this machine")
    assert not host.precise_on_x86  # built for this machine: its own kernels, as deployed
    jetson = onnx_weight_choice("auto", get_profile("jetson-agx-orin"))
    assert not jetson.reduce_range and jetson.precise_on_x86 and jetson.built_for == "jetson-agx-orin"
    assert not onnx_weight_choice("auto", get_profile("x86-avx512-server")).reduce_range
    assert not onnx_weight_choice("auto", get_profile("nvidia-a100")).reduce_range  # ORT on its GPU
    avx2 = onnx_weight_choice("auto", _cpu_profile(["x86_64", "sse4_1", "avx2"]))
    assert avx2.reduce_range and "saturate" in avx2.reason and not avx2.precise_on_x86
    unknown = onnx_weight_choice("auto", _cpu_profile([]))
    assert unknown.reduce_range and "does not state" in unknown.reason


def test_an_explicit_setting_wins_and_is_recorded_as_such():
    forced = onnx_weight_choice(False, _cpu_profile(["x86_64", "avx2"]))
    assert not forced.reduce_range and forced.reason.startswith("reduce_range=False as configured")
    assert onnx_weight_choice(True, get_profile("jetson-agx-orin")).reduce_range
