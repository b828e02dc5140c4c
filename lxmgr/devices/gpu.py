"""gpu devices of gputype physical: the DRM nodes (/dev/dri/card*, renderD*, controlD*) of
every host GPU the device selects (LXD's doc/reference/devices_gpu.md, lxd/device/
gpu_physical.go startContainer), passed in as unix-char nodes at the same paths.

Cards are found as LXD's resources.GetGPU finds them: /sys/class/drm/card<N> entries with a
`dev` file (connectors have none), one per PCI address; `id` selects the DRM card number,
`pci`, `vendorid`, `productid` the PCI device. No key selects every card. The mode of each
node is `mode`, else the host node's (LXD passes defaultMode=false here); the owner is
`uid`:`gid` (0:0). NVIDIA's extra nodes (/dev/nvidia*) and CDI names are not handled: an
NVIDIA card passes its DRM nodes only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lxmgr.devices.base import RunConfig
from lxmgr.devices.unix import NodeDevice
from lxmgr.errors import InvalidConfig
from lxmgr.model.devices_unix import normalise_pci
from lxmgr.runtime.nodes import DeviceNode

_CARD_RE = re.compile(r"^card[0-9]+$")
_NODE_PREFIXES = ("card", "renderD", "controlD")


@dataclass(frozen=True)
class DrmCard:
    """One GPU as /sys/class/drm shows it."""

    id: int  # the N of cardN
    pci: str  # "0000:00:02.0", or "" when not on PCI
    vendor: str  # "8086", "" when unknown
    product: str
    nodes: list[tuple[str, int, int]] = field(default_factory=list)  # (name, major, minor)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _numbers(dev_file: str) -> tuple[int, int] | None:
    major, _, minor = _read(dev_file).partition(":")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _pci_address(device: str) -> str:
    """The PCI address of a device directory (LXD's resources pciAddress): its real path's
    last component when its subsystem is pci (a virtio GPU: its parent's)."""
    real = os.path.realpath(device)
    subsystem = os.path.basename(os.path.realpath(os.path.join(real, "subsystem")))
    if subsystem == "virtio":
        real = os.path.dirname(real)
        subsystem = os.path.basename(os.path.realpath(os.path.join(real, "subsystem")))
    return os.path.basename(real) if subsystem == "pci" else ""


def scan_cards(sysfs: str = "/sys") -> list[DrmCard]:
    """Every GPU with DRM nodes, in card order."""
    drm = os.path.join(sysfs, "class", "drm")
    try:
        entries = sorted((e for e in os.listdir(drm) if _CARD_RE.match(e)),
                         key=lambda e: int(e[4:]))
    except FileNotFoundError:
        return []
    cards: list[DrmCard] = []
    seen: set[str] = set()
    for entry in entries:
        if not os.path.exists(os.path.join(drm, entry, "dev")):
            continue
        device = os.path.join(drm, entry, "device")
        pci = _pci_address(device)
        if pci and pci in seen:
            continue
        seen.add(pci)
        nodes = []
        siblings = os.path.join(device, "drm")  # cardN and its renderD/controlD nodes
        names = sorted(os.listdir(siblings)) if os.path.isdir(siblings) else []
        for name in names or [entry]:
            base = os.path.join(siblings, name) if names else os.path.join(drm, entry)
            numbers = _numbers(os.path.join(base, "dev"))
            if name.startswith(_NODE_PREFIXES) and numbers is not None:
                nodes.append((name, *numbers))
        cards.append(DrmCard(int(entry[4:]), pci, _read(os.path.join(device, "vendor"))[2:],
                             _read(os.path.join(device, "device"))[2:], nodes))
    return cards


class Gpu(NodeDevice):
    type = "gpu"
    applied_by = "lxmgr.model.devices_unix"  # "gputype": validation passes 'physical' only
    sysfs = "/sys"  # tests point both at a fake tree
    dev = "/dev"

    def selects(self, card: DrmCard) -> bool:
        """LXD's gpuSelected: every key given must match."""
        want = self.config
        return not ((want.get("vendorid") and card.vendor != want["vendorid"].lower())
                    or (want.get("productid") and card.product != want["productid"].lower())
                    or (want.get("pci") and card.pci != normalise_pci(want["pci"]))
                    or (want.get("id") and str(card.id) != want["id"]))

    def plan_nodes(self) -> list[tuple[str, DeviceNode]]:
        """(path inside, node) for each DRM node of the selected cards present in /dev/dri;
        InvalidConfig naming the device when no card matches."""
        cards = [card for card in scan_cards(self.sysfs) if self.selects(card)]
        if not cards:
            raise InvalidConfig(f"Failed to find the GPU of device '{self.name}': no DRM card "
                                f"matches{self._selector()}")
        uid, gid = self.host_ids()
        planned = []
        for card in cards:
            for name, major, minor in card.nodes:
                host = os.path.join(self.dev, "dri", name)
                try:
                    mode = self.mode(os.stat(host).st_mode & 0o7777)
                except FileNotFoundError:
                    continue  # LXD passes only nodes present on the host
                planned.append((f"/dev/dri/{name}", DeviceNode("c", major, minor, mode,
                                                               uid, gid)))
        return planned

    def _selector(self) -> str:
        keys = [f"{k}={self.config[k]}" for k in ("id", "pci", "vendorid", "productid")
                if self.config.get(k)]
        return f" {' '.join(keys)}" if keys else " (the host has none)"

    def start(self) -> RunConfig:
        return self.run_config(self.plan_nodes())
