"""Validation of unix-char, unix-block and gpu devices (LXD's keys and rules)."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.devices import validate_devices
from lxmgr.model.devices_unix import normalise_pci

GOOD = {
    "fuse": {"type": "unix-char", "source": "/dev/fuse"},
    "tun": {"type": "unix-char", "path": "/dev/net/tun", "uid": "1000", "gid": "1000",
            "mode": "0666", "required": "false"},
    "kvm": {"type": "unix-char", "source": "/dev/kvm", "path": "/dev/kvm", "major": "10",
            "minor": "232"},
    "loop": {"type": "unix-block", "source": "/dev/loop7", "path": "/dev/loop0", "mode": "660"},
    "gpu": {"type": "gpu"},
    "card": {"type": "gpu", "gputype": "physical", "id": "0", "uid": "0", "gid": "44",
             "mode": "0660"},
    "intel": {"type": "gpu", "vendorid": "8086", "productid": "46A6"},
    "slot": {"type": "gpu", "pci": "0000:00:02.0"},
    "slot2": {"type": "gpu", "pci": "01:00.0"},
}


def test_good_devices() -> None:
    assert validate_devices(GOOD) == GOOD


BAD = [
    ("neither path nor source", {"type": "unix-char"}, r"needs a 'source' or a 'path'$"),
    ("relative path", {"type": "unix-char", "path": "dev/x"}, r"key 'path'.*must be absolute"),
    ("major alone", {"type": "unix-char", "path": "/dev/x", "major": "10"},
     r"'major' and 'minor' go together"),
    ("major too big", {"type": "unix-block", "path": "/dev/x", "major": "4096", "minor": "0"},
     r"key 'major': Value '4096' is out of range \[0, 4095\]"),
    ("minor too big", {"type": "unix-char", "path": "/dev/x", "major": "1",
                       "minor": "1048576"}, r"key 'minor'"),
    ("bad uid", {"type": "unix-char", "path": "/dev/x", "uid": "-1"}, r"key 'uid'"),
    ("decimal mode", {"type": "unix-char", "path": "/dev/x", "mode": "0968"},
     r"key 'mode': Invalid mode '0968': expected an octal file mode such as 0660"),
    ("mode too big", {"type": "unix-char", "path": "/dev/x", "mode": "17777"}, r"key 'mode'"),
    ("path under /sys", {"type": "unix-char", "source": "/dev/x", "path": "/sys/x"},
     r"'path' can't be under /sys"),
    ("path /dev", {"type": "unix-char", "source": "/dev/x", "path": "/dev"},
     r"'path' can't be '/dev'"),
    ("bad required", {"type": "unix-char", "path": "/dev/x", "required": "maybe"},
     r"key 'required'"),
    ("unknown key", {"type": "unix-char", "path": "/dev/x", "ownership.inherit": "true"},
     r"unknown key 'ownership.inherit' for type 'unix-char'"),
    ("gputype mdev", {"type": "gpu", "gputype": "mdev"},
     r"gputype 'mdev' is not supported \(lxmgr passes whole GPUs: 'physical'\)"),
    ("cdi id", {"type": "gpu", "id": "nvidia.com/gpu=0"},
     r"'id' must be a DRM card number \(Container Device Interface names"),
    ("pci and vendor", {"type": "gpu", "pci": "00:02.0", "vendorid": "8086"},
     r"'pci' can't be combined with 'id', 'vendorid' or 'productid'"),
    ("id and product", {"type": "gpu", "id": "1", "productid": "46a6"},
     r"'id' can't be combined"),
    ("bad pci", {"type": "gpu", "pci": "0:2.0"}, r"key 'pci': Invalid PCI address '0:2.0'"),
    ("bad vendorid", {"type": "gpu", "vendorid": "0x8086"},
     r"key 'vendorid': Invalid device id '0x8086': expected four hex digits"),
    ("gpu source", {"type": "gpu", "source": "/dev/dri/card0"}, r"unknown key 'source'"),
]


@pytest.mark.parametrize(("device", "pattern"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_devices(device: dict[str, str], pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=r"^Invalid device 'x'.*" + pattern):
        validate_devices({"x": device})


def test_pci_addresses_normalise_as_lxd() -> None:
    assert normalise_pci("01:00.0") == "0000:01:00.0"
    assert normalise_pci("0000:0A:00.1") == "0000:0a:00.1"
