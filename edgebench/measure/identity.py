"""Which device a measurement's figures describe: the one it was planned for only when the machine
that ran it recognises itself as that device (the profile's `detect` rule).

A Ray node that merely advertises `device:jetson-orin-nano`, or a bundle measured on the wrong
board, would otherwise put an x86 machine's figures under the Jetson's name. Such rows are
relabelled as measured on what the machine really is, and carry a warning saying what it
claimed to be.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from edgebench.backends.host import local_device
from edgebench.core.records import Measurement
from edgebench.devices.profiles import DeviceProfile


def identity_warning(planned: DeviceProfile, actual: DeviceProfile, where: str) -> str:
    return (f"{where} was asked to measure on {planned.name} but does not detect itself as one "
            f"(its detect rule did not match); figures are labelled as measured on {actual.name} ({actual.description})")


def label_with_identity(result: Measurement, planned: Optional[DeviceProfile], where: str = "this machine",
                        note: str = "") -> Measurement:
    """`result` as measured on this machine: unchanged when this machine is `planned` (or no profile
    was given), otherwise relabelled with the device this machine detects itself as.

    The key stays the planned one, so a resumed run does not plan the same work again."""
    if planned is None or planned.matches_this_machine():
        return result
    actual = local_device()
    if actual.name == planned.name:
        return result
    warning = identity_warning(planned, actual, where)
    extra = dict(result.extra, advertised_device=planned.name, identity_warning=warning)
    return dataclasses.replace(result, device=actual.name, extra=extra,
                               measured_on=actual.description + (f"; {note}" if note else ""))


def relabelled_run_info(info: dict, measurements: list[Measurement]) -> Optional[dict]:
    """The run's info corrected when rows planned for the asked device were relabelled as another
    machine's (so the report says where the figures come from); None when nothing was."""
    relabelled = [m for m in measurements if m.source == "measured" and m.extra.get("identity_warning")
                  and m.extra.get("advertised_device") == info.get("device")]
    if not relabelled:
        return None
    warnings = sorted({m.extra["identity_warning"] for m in relabelled})
    return dict(info, figures_are_target=False, measured_on_device=relabelled[0].device,
                measured_on=relabelled[0].measured_on, identity_warnings=warnings)
