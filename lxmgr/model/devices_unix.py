"""PURE keys and rules of the device-node types: unix-char, unix-block (LXD's
doc/reference/devices_unix_char.md, devices_unix_block.md) and gpu of gputype physical
(devices_gpu.md), with LXD's validators (lxd/device/device_utils_unix.go unixValid*,
lxd/device/gpu.go gpuValidationRules, shared/validate IsPCIAddress and IsDeviceID).

Registered by lxmgr.model.devices. Imports lxmgr.errors and lxmgr.model.validate only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v

GPU_TYPES = ("physical",)  # LXD's mdev and sriov are VM-only; mig needs NVIDIA's CDI
# Where the runtime mounts its own filesystems: a node there would be hidden or refused.
RESERVED_PATHS = ("/proc", "/sys")
_PCI_RE = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]$")
_DEVICE_ID_RE = re.compile(r"^[0-9a-fA-F]{4}$")


def is_octal_mode(value: str) -> None:
    """A file mode in octal, 0 to 7777 (e.g. 0660)."""
    if not re.fullmatch(r"[0-7]{1,5}", value) or int(value, 8) > 0o7777:
        raise InvalidConfig(f"Invalid mode '{value}': expected an octal file mode such as 0660")


def is_pci_address(value: str) -> None:
    """A PCI address, [domain:]bus:slot.function (0000:00:02.0 or 00:02.0)."""
    if not _PCI_RE.fullmatch(value):
        raise InvalidConfig(f"Invalid PCI address '{value}'")


def is_device_id(value: str) -> None:
    """A PCI vendor or product id: four hex digits (8086)."""
    if not _DEVICE_ID_RE.fullmatch(value):
        raise InvalidConfig(f"Invalid device id '{value}': expected four hex digits")


def normalise_pci(value: str) -> str:
    """LXD's pcidev.NormaliseAddress: lower case, with the 0000 domain when none is given."""
    value = value.lower()
    return value if value.count(":") == 2 else f"0000:{value}"


UNIX_KEYS: dict[str, v.Validator] = {
    "source": v.optional(v.is_abs_path),
    "path": v.optional(v.is_abs_path),
    # <linux/kdev_t.h>: a dev_t holds a 12-bit major and a 20-bit minor (LXD takes any u32)
    "major": v.optional(v.is_int_range(0, (1 << 12) - 1)),
    "minor": v.optional(v.is_int_range(0, (1 << 20) - 1)),
    "uid": v.optional(v.is_uint32),
    "gid": v.optional(v.is_uint32),
    "mode": v.optional(is_octal_mode),
    "required": v.optional(v.is_bool),
}

GPU_KEYS: dict[str, v.Validator] = {
    "gputype": v.is_any,  # checked by check_gpu, which names what lxmgr passes
    "id": v.is_any,
    "pci": v.optional(is_pci_address),
    "vendorid": v.optional(is_device_id),
    "productid": v.optional(is_device_id),
    "uid": v.optional(v.is_uint32),
    "gid": v.optional(v.is_uint32),
    "mode": v.optional(is_octal_mode),
}


def inside_path(dev: Mapping[str, str]) -> str:
    """Where a unix device appears in the container: `path`, else `source` (LXD's
    unixDeviceDestPath)."""
    return dev.get("path") or dev.get("source", "")


def check_unix(dev: Mapping[str, str]) -> str | None:
    """Cross-key rules of unix-char and unix-block."""
    if not dev.get("source") and not dev.get("path"):
        return "needs a 'source' or a 'path'"
    if bool(dev.get("major")) != bool(dev.get("minor")):
        return "'major' and 'minor' go together"
    path = inside_path(dev).rstrip("/")
    if path in ("", "/dev"):
        return f"'path' can't be '{path or '/'}'"
    for reserved in RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/"):
            return f"'path' can't be under {reserved} (lxmgr mounts it)"
    return None


def check_gpu(dev: Mapping[str, str]) -> str | None:
    """Cross-key rules of gpu: one way to select cards, gputype physical."""
    gputype = dev.get("gputype") or "physical"
    if gputype not in GPU_TYPES:
        return f"gputype '{gputype}' is not supported (lxmgr passes whole GPUs: 'physical')"
    if dev.get("pci") and any(dev.get(k) for k in ("id", "vendorid", "productid")):
        return "'pci' can't be combined with 'id', 'vendorid' or 'productid'"
    card = dev.get("id", "")
    if card and any(dev.get(k) for k in ("pci", "vendorid", "productid")):
        return "'id' can't be combined with 'pci', 'vendorid' or 'productid'"
    if card and not card.isdigit():
        return f"'id' must be a DRM card number (Container Device Interface names such " \
            f"as '{card}' are not supported)"
    return None
