"""A row is measured on DEVICE only when the machine that ran it detects itself as DEVICE."""
from edgebench.backends.host import local_device
from edgebench.core.records import Measurement
from edgebench.devices.profiles import DeviceProfile, get_profile
from edgebench.measure.identity import label_with_identity, relabelled_run_info


def _row(device="jetson-orin-nano"):
    return Measurement(key=f"c|onnxruntime|cpu|fp32|{device}|b1", candidate="c", backend="onnxruntime", processor="cpu",
                       precision="fp32", device=device, source="measured", status="ok",
                       measured_on="NVIDIA Jetson Orin Nano; ray node n1 (10.0.0.2)")


def test_a_machine_that_is_not_the_device_is_labelled_as_what_it_is():
    jetson = get_profile("jetson")
    assert not jetson.matches_this_machine()  # this test machine is no Jetson
    m = label_with_identity(_row(), jetson, where="ray node n1", note="ray node n1")
    here = local_device()
    assert m.device == here.name != "jetson-orin-nano"
    assert m.measured_on == f"{here.description}; ray node n1"
    assert m.key == _row().key  # resuming does not plan it again
    assert m.extra["advertised_device"] == "jetson-orin-nano"
    assert m.extra["identity_warning"].startswith("ray node n1 was asked to measure on jetson-orin-nano")


def test_a_machine_that_detects_as_the_device_keeps_the_label():
    me = DeviceProfile(name="lab-box", description="lab", processors={}, detect={"always": True})
    assert label_with_identity(_row("lab-box"), me) == _row("lab-box")
    assert label_with_identity(_row(), None) == _row()


def test_run_info_says_the_figures_are_not_the_devices():
    info = {"device": "jetson-orin-nano", "figures_are_target": True, "measured_on": "NVIDIA Jetson Orin Nano"}
    relabelled = label_with_identity(_row(), get_profile("jetson"), where="ray node n1")
    fixed = relabelled_run_info(info, [relabelled])
    assert fixed["figures_are_target"] is False and fixed["measured_on_device"] == local_device().name
    assert fixed["identity_warnings"] == [relabelled.extra["identity_warning"]]
    assert relabelled_run_info(info, [_row()]) is None
    assert relabelled_run_info(dict(info, device="raspberry-pi-5"), [relabelled]) is None
