"""Device validation: types, per-type keys, cross-key rules, error messages."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model.devices import root_disk, validate_device, validate_devices

GOOD = {
    "root": {"type": "disk", "path": "/", "pool": "default", "size": "10GiB"},
    "data": {"type": "disk", "path": "/mnt/data", "source": "/srv/data", "readonly": "true"},
    "eth0": {"type": "nic", "network": "lxmgrbr0", "name": "eth0", "hwaddr": "00:16:3e:01:02:03",
             "ipv4.address": "10.10.0.5", "limits.ingress": "100Mbit", "limits.egress": "1Gbit",
             "mtu": "1500", "host_name": "vethweb0"},
    "eth1": {"type": "nic", "nictype": "bridged", "parent": "br0"},
    "web": {"type": "proxy", "listen": "tcp:0.0.0.0:8080", "connect": "tcp:127.0.0.1:80",
            "bind": "host", "nat": "false"},
    "masked": {"type": "none"},
    "code": {"type": "disk", "path": "/code", "source": "/home/me/code", "shift": "true",
             "recursive": "true", "propagation": "rprivate", "required": "false"},
    "conf": {"type": "disk", "path": "/etc/app.conf", "source": "/srv/app.conf"},
    "vol": {"type": "disk", "path": "/srv/shared", "pool": "default", "source": "shared-1",
            "readonly": "true", "shift": "true"},
}


def test_good_devices_validate_unchanged() -> None:
    assert validate_devices(GOOD) == GOOD


def test_values_are_coerced_to_strings() -> None:
    out = validate_device("d", {"type": "disk", "path": "/d", "source": "/s", "readonly": True})
    assert out["readonly"] == "true"
    out = validate_device("n", {"type": "nic", "network": "br", "mtu": 9000})
    assert out["mtu"] == "9000"


BAD = [
    ("missing type", "x", {"path": "/"}, r"unknown type ''"),
    ("unknown type", "x", {"type": "floppy"}, r"unknown type 'floppy'"),
    ("misspelt type", "x", {"type": "disks"}, r"did you mean 'disk'\?$"),
    ("disk relative source", "d", {"type": "disk", "path": "/d", "source": "code"},
     r"^Invalid device 'd': 'source': Invalid path 'code': must be absolute$"),
    ("disk without source", "d", {"type": "disk", "path": "/d"}, r"needs a 'source'"),
    ("disk under /proc", "d", {"type": "disk", "path": "/proc/x", "source": "/s"},
     r"can't be under /proc"),
    ("disk under /sys", "d", {"type": "disk", "path": "/sys", "source": "/s"},
     r"can't be under /sys"),
    ("disk bad propagation", "d", {"type": "disk", "path": "/d", "source": "/s",
                                   "propagation": "sideways"}, r"key 'propagation'"),
    ("disk bad shift", "d", {"type": "disk", "path": "/d", "source": "/s", "shift": "yes!"},
     r"key 'shift'"),
    ("volume disk without source", "d", {"type": "disk", "path": "/d", "pool": "p"},
     r"^Invalid device 'd': a disk with a 'pool' needs the storage volume's name in "
     r"'source'$"),
    ("volume disk with a path source", "d", {"type": "disk", "path": "/d", "pool": "p",
                                             "source": "/srv/data"},
     r"^Invalid device 'd': 'source': Invalid volume name '/srv/data'"),
    ("volume disk unshifted", "d", {"type": "disk", "path": "/d", "pool": "p",
                                    "source": "vol", "shift": "false"}, r"'shift' can't be"),
    ("volume disk optional", "d", {"type": "disk", "path": "/d", "pool": "p", "source": "vol",
                                   "required": "false"}, r"'required' can't be false"),
    ("volume disk with size", "d", {"type": "disk", "path": "/d", "pool": "p",
                                    "source": "vol", "size": "1GiB"}, r"only applies to the root"),
    ("volume disk under /proc", "d", {"type": "disk", "path": "/proc/v", "pool": "p",
                                      "source": "vol"}, r"can't be under /proc"),
    ("unknown key", "root", {"type": "disk", "path": "/", "pool": "p", "color": "red"},
     r"^Invalid device 'root': unknown key 'color' for type 'disk'$"),
    ("key of another type", "eth0", {"type": "nic", "network": "br", "path": "/"},
     r"unknown key 'path'"),
    ("none with keys", "m", {"type": "none", "path": "/"}, r"unknown key 'path'"),
    ("misspelt key", "eth0", {"type": "nic", "network": "br", "nictyp": "bridged"},
     r"^Invalid device 'eth0': unknown key 'nictyp' for type 'nic': did you mean "
     r"'nictype'\?$"),
    ("disk without path", "d", {"type": "disk", "source": "/s"},
     r"^Invalid device 'd' key 'path': Value is required$"),
    ("relative path", "d", {"type": "disk", "path": "mnt", "source": "/s"}, r"key 'path'"),
    ("root without pool", "root", {"type": "disk", "path": "/"}, r"needs a 'pool'"),
    ("root with source", "root", {"type": "disk", "path": "/", "pool": "p", "source": "/x"},
     r"can't have a 'source'"),
    ("disk without source", "d", {"type": "disk", "path": "/mnt"}, r"needs a 'source'"),
    ("size on non-root", "d", {"type": "disk", "path": "/m", "source": "/s", "size": "1GiB"},
     r"'size' only applies"),
    ("bad size", "root", {"type": "disk", "path": "/", "pool": "p", "size": "big"}, r"key 'size'"),
    ("bad readonly", "d", {"type": "disk", "path": "/m", "source": "/s", "readonly": "ro"},
     r"key 'readonly'"),
    ("nic without network", "eth0", {"type": "nic"}, r"'network' or 'nictype'"),
    ("network and parent", "eth0", {"type": "nic", "network": "n", "parent": "br0"},
     r"can't be combined"),
    ("bridged without parent", "eth0", {"type": "nic", "nictype": "bridged"}, r"needs a 'parent'"),
    ("bad nictype", "eth0", {"type": "nic", "nictype": "tun"}, r"key 'nictype'"),
    ("bad mac", "eth0", {"type": "nic", "network": "n", "hwaddr": "xx"}, r"key 'hwaddr'"),
    ("bad ip", "eth0", {"type": "nic", "network": "n", "ipv4.address": "300.1.1.1"},
     r"key 'ipv4.address'"),
    ("bad mtu", "eth0", {"type": "nic", "network": "n", "mtu": "big"}, r"key 'mtu'"),
    ("long host_name", "eth0", {"type": "nic", "network": "n", "host_name": "a" * 16},
     r"key 'host_name'"),
    ("bad rate", "eth0", {"type": "nic", "network": "n", "limits.egress": "fast"},
     r"key 'limits.egress'"),
    ("proxy no connect", "p", {"type": "proxy", "listen": "tcp:0.0.0.0:80"}, r"key 'connect'"),
    ("proxy bad listen", "p",
     {"type": "proxy", "listen": "0.0.0.0:80", "connect": "tcp:1.2.3.4:80"}, r"key 'listen'"),
    ("proxy bad bind", "p", {"type": "proxy", "listen": "tcp:0.0.0.0:80",
                             "connect": "tcp:1.2.3.4:80", "bind": "both"}, r"key 'bind'"),
    ("structured value", "d", {"type": "disk", "path": "/", "pool": ["a"]}, r"key 'pool'"),
]


@pytest.mark.parametrize(("name", "device", "pattern"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_device_rejected(name: str, device: dict[str, object], pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=pattern):
        validate_devices({name: device})


@pytest.mark.parametrize("dtype", ["unix-hotplug", "usb", "infiniband", "tpm"])
def test_unimplemented_lxd_types_are_refused_by_name(dtype: str) -> None:
    with pytest.raises(NotSupported, match=f"^Invalid device 'x': type '{dtype}' is not "
                                           "supported$"):
        validate_devices({"x": {"type": dtype, "path": "/dev/x"}})


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a b", "a/b", "x" * 65])
def test_bad_device_names(name: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid device name"):
        validate_devices({name: {"type": "none"}})


def test_device_must_be_a_mapping() -> None:
    with pytest.raises(InvalidConfig, match="must be a mapping"):
        validate_devices({"x": "disk"})  # type: ignore[dict-item]


def test_root_disk() -> None:
    assert root_disk(GOOD) == ("root", GOOD["root"])
    assert root_disk({"eth0": GOOD["eth0"]}) is None


@pytest.mark.parametrize("device", [
    {"type": "nic", "network": "n", "name": "eth0\n"},
    {"type": "nic", "network": "n", "hwaddr": "00:16:3e:01:02:03\n"},
    {"type": "proxy", "listen": "tcp:1.2.3.4:80\n", "connect": "tcp:1.2.3.4:80"},
    {"type": "disk", "path": "/", "pool": "p", "size": "1GiB\nx"},
])
def test_trailing_newline_is_not_accepted(device: dict[str, str]) -> None:
    with pytest.raises(InvalidConfig):
        validate_devices({"x": device})


def test_device_name_with_newline_rejected() -> None:
    with pytest.raises(InvalidConfig, match="Invalid device name"):
        validate_devices({"x\n": {"type": "none"}})


@pytest.mark.parametrize("propagation", ["shared", "rshared", "slave", "rslave", "unbindable"])
def test_propagations_not_applied_are_refused(propagation: str) -> None:
    with pytest.raises(NotSupported, match=f"propagation '{propagation}' is not supported"):
        validate_devices({"d": {"type": "disk", "source": "/s", "path": "/d",
                                "propagation": propagation}})
