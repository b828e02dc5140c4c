"""What a container's network looks like from inside its own network namespace: interface
addresses (both families), MAC, MTU, state and counters, as LXD's state.network reports them.

The calling thread enters the container's netns (setns for CLONE_NEWNET is per-thread, so
the daemon's other threads are unaffected), opens its netlink socket there, and goes back to
its own namespace before returning. Never call it from the event loop's thread.
"""

from __future__ import annotations

import os
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from lxmgr.errors import KernelError
from lxmgr.linux import consts as c
from lxmgr.linux import libc

SCOPES = {0: "global", 200: "site", 253: "link", 254: "local"}
COUNTERS = {"rx_bytes": "bytes_received", "tx_bytes": "bytes_sent",
            "rx_packets": "packets_received", "tx_packets": "packets_sent",
            "rx_errors": "errors_received", "tx_errors": "errors_sent",
            "rx_dropped": "packets_dropped_inbound", "tx_dropped": "packets_dropped_outbound"}


def interfaces(pid: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """state.network entries for the named interfaces (None: all of them, as LXD lists,
    lo included) inside PID's network namespace."""
    own = os.open(f"/proc/self/task/{libc.gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(own)
        return {}
    try:
        libc.setns(target, c.CLONE_NEWNET)
        try:
            with IPRoute() as ipr:
                return _describe(ipr, None if names is None else set(names))
        finally:
            libc.setns(own, c.CLONE_NEWNET)
    except OSError as err:
        raise KernelError(f"Failed to read the network of process {pid}: {err}") from err
    finally:
        os.close(target)
        os.close(own)


def _describe(ipr: IPRoute, names: set[str] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    by_index: dict[int, str] = {}
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if names is not None and name not in names:
            continue
        by_index[link["index"]] = name
        stats = link.get_attr("IFLA_STATS64") or {}
        out[name] = {
            "addresses": [], "hwaddr": link.get_attr("IFLA_ADDRESS") or "",
            "mtu": link.get_attr("IFLA_MTU") or 0,
            "state": "up" if link.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN") else "down",
            "type": "loopback" if name == "lo" else "broadcast",
            "counters": {ours: int(stats.get(theirs, 0)) for theirs, ours in COUNTERS.items()},
        }
    for addr in ipr.get_addr():
        name = by_index.get(addr["index"])
        if name is None:
            continue
        family = "inet" if addr["family"] == 2 else "inet6"
        out[name]["addresses"].append({
            "family": family, "address": addr.get_attr("IFA_ADDRESS"),
            "netmask": str(addr["prefixlen"]), "scope": SCOPES.get(addr["scope"], "global")})
    return out
