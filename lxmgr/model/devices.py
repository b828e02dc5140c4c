"""PURE device validation: which device types exist, their keys and cross-key rules.

A device is a flat dict of strings with a 'type'. Must not import anything but lxmgr.errors,
other lxmgr.model modules and the stdlib; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model import validate as v
from lxmgr.model.config import to_config_value
from lxmgr.model.devices_unix import GPU_KEYS, UNIX_KEYS, check_gpu, check_unix
from lxmgr.model.units import parse_bool
from lxmgr.model.volume import validate_volume_name

NIC_TYPES = ("bridged", "macvlan", "p2p", "physical", "ipvlan", "routed")

# LXD device types lxmgr does not implement: refused by name rather than accepted and ignored.
UNSUPPORTED_TYPES = ("unix-hotplug", "usb", "infiniband", "tpm", "pci")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                "runbindable")
# The container's intermediate process makes its mount namespace private before it clones a
# disk's source, so a shared or slave link to the host's mounts is not kept at boot: only the
# private forms are applied (and tested); the others are refused by name.
APPLIED_PROPAGATIONS = ("private", "rprivate")
# Where the runtime mounts its own filesystems: a disk there would be hidden or refused.
_RESERVED_PATHS = ("/proc", "/sys")

# type -> allowed keys (besides 'type') and their validators.
DEVICE_KEYS: dict[str, dict[str, v.Validator]] = {
    "none": {},
    "disk": {
        "path": v.required(v.is_abs_path),
        "source": v.is_any,
        "pool": v.is_any,
        "size": v.optional(v.is_size),
        "readonly": v.optional(v.is_bool),
        "required": v.optional(v.is_bool),
        "recursive": v.optional(v.is_bool),
        "shift": v.optional(v.is_bool),
        "propagation": v.optional(v.is_one_of(*PROPAGATIONS)),
    },
    "nic": {
        "network": v.is_any,
        "nictype": v.optional(v.is_one_of(*NIC_TYPES)),
        "parent": v.optional(v.is_interface_name),
        "name": v.optional(v.is_interface_name),
        "hwaddr": v.optional(v.is_mac_address),
        "mtu": v.optional(v.is_mtu),
        "ipv4.address": v.optional(v.is_ipv4_address),
        "host_name": v.optional(v.is_interface_name),
        "limits.ingress": v.optional(v.is_bit_rate),
        "limits.egress": v.optional(v.is_bit_rate),
    },
    "proxy": {
        "listen": v.required(v.is_proxy_address),
        "connect": v.required(v.is_proxy_address),
        "bind": v.optional(v.is_one_of("host", "instance")),
        "nat": v.optional(v.is_bool),
    },
    "unix-char": UNIX_KEYS,
    "unix-block": UNIX_KEYS,
    "gpu": GPU_KEYS,
}

_DEVICE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")


def validate_device_name(name: str) -> None:
    """1-64 letters, digits, '_', '.', ':' or '-', not starting with '.', ':' or '-'."""
    if not _DEVICE_NAME_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid device name '{name}'")


def _check_disk(dev: Mapping[str, str]) -> str | None:
    if dev["path"] == "/":
        if not dev.get("pool"):
            return "the root disk needs a 'pool'"
        if dev.get("source"):
            return "the root disk can't have a 'source'"
        return None
    reason = _check_volume_source(dev) if dev.get("pool") else _check_host_source(dev)
    if reason:
        return reason
    if dev.get("size"):
        return "'size' only applies to the root disk"
    path = dev["path"].rstrip("/")
    for reserved in _RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/"):
            return f"'path' can't be under {reserved} (lxmgr mounts it)"
    return None


def _check_host_source(dev: Mapping[str, str]) -> str | None:
    if not dev.get("source"):
        return "a disk other than the root disk needs a 'source'"
    try:
        v.is_abs_path(dev["source"])
    except InvalidConfig as err:
        return f"'source': {err}"
    return None


def _check_volume_source(dev: Mapping[str, str]) -> str | None:
    """A custom storage volume of `pool`, named by `source` (LXD's disk from a volume)."""
    if not dev.get("source"):
        return "a disk with a 'pool' needs the storage volume's name in 'source'"
    try:
        validate_volume_name(dev["source"])
    except InvalidConfig as err:
        return f"'source': {err}"
    for key, why in (("shift", "its files are always mapped to the instance's ids"),
                     ("required", "a missing volume always fails the start")):
        if dev.get(key) and not parse_bool(dev[key]):
            return f"'{key}' can't be false for a storage volume ({why})"
    return None


def _check_nic(dev: Mapping[str, str]) -> str | None:
    if dev.get("network"):
        if dev.get("nictype") or dev.get("parent"):
            return "'network' can't be combined with 'nictype' or 'parent'"
        return None
    if not dev.get("nictype"):
        return "needs either 'network' or 'nictype'"
    if dev["nictype"] in ("bridged", "macvlan", "physical", "ipvlan") and not dev.get("parent"):
        return f"nictype '{dev['nictype']}' needs a 'parent'"
    return None


def _unsupported(dtype: str, dev: Mapping[str, str]) -> str | None:
    """What LXD has and lxmgr does not set up (lxmgr.net.nic.build_nic, net.proxy.build_proxy):
    refused by name when the device is written, for profiles as for instances."""
    if dtype == "nic" and dev.get("nictype") and dev["nictype"] != "bridged":
        return f"nictype '{dev['nictype']}' is not supported (only 'bridged' or a managed " \
            "'network')"
    if dtype == "disk" and dev.get("propagation") and \
            dev["propagation"] not in APPLIED_PROPAGATIONS:
        return f"propagation '{dev['propagation']}' is not supported (only private or rprivate)"
    if dtype == "proxy":
        if dev.get("bind", "host") != "host":
            return "bind 'instance' is not supported (listen on the host, connect inside)"
        for key in ("listen", "connect"):
            if not dev[key].startswith(("tcp:", "udp:")):
                return f"'{key}' {dev[key]}: only tcp and udp are supported"
    return None


def _check_proxy(dev: Mapping[str, str]) -> str | None:
    nat = parse_bool(dev["nat"]) if dev.get("nat") else False
    if nat and (dev["listen"].startswith("unix:") or dev["connect"].startswith("unix:")):
        return "'nat' needs tcp or udp addresses"
    return None


_RULES: dict[str, Callable[[Mapping[str, str]], str | None]] = {
    "disk": _check_disk,
    "nic": _check_nic,
    "proxy": _check_proxy,
    "unix-char": check_unix,
    "unix-block": check_unix,
    "gpu": check_gpu,
}


def validate_device(name: str, device: Mapping[str, object]) -> dict[str, str]:
    """Validate one device and return it with string values; raise InvalidConfig naming it."""
    validate_device_name(name)
    if not isinstance(device, Mapping):
        raise InvalidConfig(f"Invalid device '{name}': must be a mapping of keys to values")
    dev: dict[str, str] = {}
    for key, raw in device.items():
        try:
            dev[str(key)] = to_config_value(raw)
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid device '{name}' key '{key}': {err}") from err
    dtype = dev.get("type", "")
    if dtype in UNSUPPORTED_TYPES:
        raise NotSupported(f"Invalid device '{name}': type '{dtype}' is not supported")
    if dtype not in DEVICE_KEYS:
        raise InvalidConfig(f"Invalid device '{name}': unknown type '{dtype}' "
                            f"(must be one of {', '.join(sorted(DEVICE_KEYS))})"
                            f"{v.did_you_mean(dtype, DEVICE_KEYS)}")
    allowed = DEVICE_KEYS[dtype]
    for key in sorted(dev):
        if key == "type":
            continue
        if key not in allowed:
            raise InvalidConfig(f"Invalid device '{name}': unknown key '{key}' for type "
                                f"'{dtype}'{v.did_you_mean(key, allowed)}")
    for key, validator in allowed.items():
        try:
            validator(dev.get(key, ""))
        except (InvalidConfig, ValueError) as err:
            raise InvalidConfig(f"Invalid device '{name}' key '{key}': {err}") from err
    missing = _unsupported(dtype, dev)
    if missing:
        raise NotSupported(f"Invalid device '{name}': {missing}")
    rule = _RULES.get(dtype)
    reason = rule(dev) if rule else None
    if reason:
        raise InvalidConfig(f"Invalid device '{name}': {reason}")
    return dev


def validate_devices(devices: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, str]]:
    """Validate every device; return them normalised (string values, sorted by name)."""
    if not isinstance(devices, Mapping):
        raise InvalidConfig("Invalid devices: must be a mapping of device names to devices")
    names = sorted(devices, key=str)
    return {str(name): validate_device(str(name), devices[name]) for name in names}


def root_disk(devices: Mapping[str, Mapping[str, str]]) -> tuple[str, dict[str, str]] | None:
    """The (name, device) of the disk mounted at '/', if any."""
    for name, dev in sorted(devices.items()):
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return name, dict(dev)
    return None
