"""Connecting to a Ray cluster, and which devices its nodes advertise.

A device joins a cluster by advertising a custom resource named after its device profile (or an
alias of it), with capacity 1 so that only one measurement runs on it at a time:

    ray start --address=HEAD:6379 --num-cpus=0 --resources='{"device:jetson-orin-nano": 1}'

Ray is optional (`pip install 'edgebench[ray]'`); nothing here imports it before it is needed.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgebench.core.errors import NotFoundError, RuntimeUnavailableError, UsageError
from edgebench.devices.profiles import get_profile

DEVICE_PREFIX = "device:"
# The package directory travels to the nodes with every job (Ray's py_modules), so a node runs
# the driver's edgebench; the runtimes themselves must be installed on the node (docs/cluster.md).
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # edgebench/, not this execute/ray/ folder


def require_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeUnavailableError("the ray executor needs Ray: pip install 'edgebench[ray]'") from None
    return ray


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds with one line when nothing listens at HOST:PORT (Ray itself retries for a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"ray address '{address}' must be HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise NotFoundError(f"no Ray cluster answers at '{address}': {e.strerror or e}") from None


def connect(address: Optional[str] = None, node_ip_address: Optional[str] = None, ship_code: bool = True):
    """Connect this process to the cluster at `address` (None: start a private local one) and return `ray`.

    Reuses an existing connection to the same cluster; a connection to another one is closed first.
    """
    ray = require_ray()
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address in (None, "auto") or address == current:
            return ray
        ray.shutdown()
    if address and address != "auto" and not address.startswith("ray://"):
        check_reachable(address)
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False}
    if ship_code:
        kwargs["runtime_env"] = {"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__", "*.pyc"]}
    if node_ip_address:
        kwargs["_node_ip_address"] = node_ip_address
    if address is None:
        # A new private single-node cluster on this machine ("local": never a stale one found on disk).
        kwargs.update(include_dashboard=False, _node_ip_address=node_ip_address or "127.0.0.1")
    try:
        ray.init(address=address or "local", **kwargs)
    except ConnectionError as e:
        raise NotFoundError(f"cannot join the Ray cluster at '{address}': {str(e).splitlines()[0][:200]}") from None
    return ray


@dataclass(frozen=True)
class ClusterDevice:
    resource: str  # e.g. "device:jetson-orin-nano"
    profile: Optional[str]  # the profile it resolves to, None when no profile has that name or alias
    node_id: str
    address: str
    hostname: str
    capacity: float

    @property
    def name(self) -> str:
        return self.resource[len(DEVICE_PREFIX):]


def cluster_devices(ray) -> list[ClusterDevice]:
    """Every device resource advertised by a live node of the connected cluster."""
    found = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for resource, capacity in sorted(node.get("Resources", {}).items()):
            if not resource.startswith(DEVICE_PREFIX):
                continue
            try:
                profile = get_profile(resource[len(DEVICE_PREFIX):]).name
            except NotFoundError:
                profile = None
            found.append(ClusterDevice(resource, profile, node["NodeID"], node.get("NodeManagerAddress", ""),
                                       node.get("NodeManagerHostname", ""), float(capacity)))
    return found


def device_resource(ray, profile) -> Optional[str]:
    """The resource name under which live nodes offer `profile` (its name or an alias), if any."""
    offered = {d.resource for d in cluster_devices(ray)}
    for name in [profile.name, *profile.aliases]:
        if DEVICE_PREFIX + name in offered:
            return DEVICE_PREFIX + name
    return None


def print_cluster_devices(console, address: str) -> None:
    """`edgebench devices --ray-address`: a table of the devices the cluster's live nodes offer."""
    from rich.markup import escape
    from rich.table import Table

    devices = cluster_devices(connect(address, ship_code=False))
    table = Table(title=f"devices offered by the Ray cluster at {escape(address)}")
    for col in ("resource", "profile", "node", "address", "hostname", "slots"):
        table.add_column(col, overflow="fold")
    for d in devices:
        table.add_row(escape(d.resource), escape(d.profile) if d.profile else "[yellow](no such profile)",
                      d.node_id[:12], escape(d.address), escape(d.hostname), f"{d.capacity:g}")
    console.print(table)
    if not devices:
        console.print("No node advertises a device. A device joins with: ray start --address=HEAD:PORT "
                      "--num-cpus=0 --resources='{\"device:<profile>\": 1}' (docs/cluster.md)", highlight=False)
