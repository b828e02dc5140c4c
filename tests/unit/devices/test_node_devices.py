"""unix-char, unix-block and gpu devices on the host side: where the node's numbers, owner
and mode come from, which GPUs a device selects (on a fake sysfs and /dev: this host has
no GPU), and the RunConfig merge. Making the nodes (mknod) is in
tests/kernel/test_unix_devices.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxmgr.devices import DEVICES, InstanceContext, RunConfig
from lxmgr.devices.gpu import Gpu, scan_cards
from lxmgr.devices.unix import UnixBlock, UnixChar
from lxmgr.errors import InvalidConfig
from lxmgr.model.idmap import IdMap
from lxmgr.runtime.disks import DiskMount
from lxmgr.runtime.nodes import DeviceNode, encode_path

IDMAP = IdMap(1_000_000, 1_000_000, 65536)
CTX = InstanceContext(name="c1", privileged=False, idmap=IDMAP)


def test_registered() -> None:
    assert DEVICES["unix-char"] is UnixChar and DEVICES["unix-block"] is UnixBlock
    assert DEVICES["gpu"] is Gpu
    assert UnixChar.hotplug and Gpu.hotplug


def test_numbers_from_the_host_node() -> None:
    assert UnixChar("n", {"type": "unix-char", "source": "/dev/null"}, CTX).numbers() == (1, 3)
    # path alone names the host node too (LXD's unixDeviceSourcePath)
    assert UnixChar("n", {"type": "unix-char", "path": "/dev/zero"}, CTX).numbers() == (1, 5)
    given = {"type": "unix-char", "source": "/dev/null", "major": "1", "minor": "7"}
    assert UnixChar("n", given, CTX).numbers() == (1, 7)


def test_numbers_without_a_host_node(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing")
    dev = UnixChar("n", {"type": "unix-char", "source": missing, "major": "10",
                         "minor": "229"}, CTX)
    assert dev.numbers() == (10, 229)
    with pytest.raises(InvalidConfig, match=f"^Missing source path '{missing}' for device 'n' "
                                            r"\(give 'major' and 'minor'"):
        UnixChar("n", {"type": "unix-char", "source": missing}, CTX).validate()
    optional = UnixChar("n", {"type": "unix-char", "source": missing, "required": "false"}, CTX)
    assert optional.numbers() is None
    assert optional.start() == RunConfig()


def test_wrong_kind_of_node(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidConfig, match="^Invalid device 'b': /dev/null is not a block "
                                            "device$"):
        UnixBlock("b", {"type": "unix-block", "source": "/dev/null"}, CTX).validate()
    with pytest.raises(InvalidConfig, match="is not a character device"):
        UnixChar("c", {"type": "unix-char", "source": str(tmp_path / "file")}, CTX).validate()


def test_owner_is_shifted_through_the_idmap() -> None:
    dev = UnixChar("n", {"type": "unix-char", "path": "/dev/null", "uid": "1000",
                         "gid": "44"}, CTX)
    assert dev.host_ids() == (1_001_000, 1_000_044)
    privileged = InstanceContext(name="c1", privileged=True)
    assert UnixChar("n", dev.config, privileged).host_ids() == (1000, 44)
    outside = UnixChar("n", {"type": "unix-char", "path": "/dev/null", "uid": "70000"}, CTX)
    with pytest.raises(InvalidConfig, match=r"^Invalid device 'n': Container uid 70000 is "
                                            r"outside the idmap \(size 65536\)$"):
        outside.validate()


def test_mode_is_octal_with_lxd_default() -> None:
    assert UnixChar("n", {"type": "unix-char", "path": "/x", "mode": "0604"}, CTX).mode(0) == 0o604
    assert UnixChar("n", {"type": "unix-char", "path": "/x"}, CTX).mode(0o660) == 0o660


def test_node_names_encode_the_path() -> None:
    assert encode_path("/dev/dri/card0") == "dev-dri-card0"
    assert encode_path("/dev/my-dev") == "dev-my--dev"
    assert DeviceNode("b", 7, 0, 0o660, 0, 0).rule == "b 7:0 rwm"


def test_run_config_merges_rules_by_device() -> None:
    run = RunConfig()
    a = DiskMount(device="a", source="/s/a", path="/dev/a", is_node=True)
    run.merge(RunConfig(disks=[a], cgroup_devices={"a": ["c 1:3 rwm"]}))
    run.merge(RunConfig(cgroup_devices={"g": ["c 226:0 rwm", "c 226:128 rwm"]}))
    assert run.disks == [a]
    assert run.cgroup_devices == {"a": ["c 1:3 rwm"], "g": ["c 226:0 rwm", "c 226:128 rwm"]}


# -- gpu on a fake sysfs -----------------------------------------------------------------------

def _card(sys: Path, pci: str, card: int, vendor: str, product: str, render: int | None,
          subsystem: str = "pci") -> None:
    """sysfs as the kernel lays a DRM GPU out: devices/.../<pci>/drm/{cardN,renderDM}/dev,
    class/drm/cardN -> that cardN directory, cardN/device -> the PCI device."""
    device = sys / "devices" / "pci0000:00" / pci
    (device / "drm").mkdir(parents=True)
    (sys / "bus" / subsystem).mkdir(parents=True, exist_ok=True)
    (device / "subsystem").symlink_to(sys / "bus" / subsystem)
    (device / "vendor").write_text(f"0x{vendor}\n")
    (device / "device").write_text(f"0x{product}\n")
    names = {f"card{card}": f"226:{card}"}
    if render is not None:
        names[f"renderD{render}"] = f"226:{render}"
    (sys / "class" / "drm").mkdir(parents=True, exist_ok=True)
    for name, numbers in names.items():
        (device / "drm" / name).mkdir()
        (device / "drm" / name / "dev").write_text(numbers + "\n")
        (device / "drm" / name / "device").symlink_to(device)
        (sys / "class" / "drm" / name).symlink_to(device / "drm" / name)
    connector = device / "drm" / f"card{card}" / f"card{card}-HDMI-A-1"
    connector.mkdir()
    (sys / "class" / "drm" / connector.name).symlink_to(connector)  # no dev: not a card


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An Intel iGPU (card0, renderD128) and an AMD card (card1, renderD129) whose render
    node is missing from /dev/dri."""
    sys, dev = tmp_path / "sys", tmp_path / "dev"
    _card(sys, "0000:00:02.0", 0, "8086", "46a6", 128)
    _card(sys, "0000:03:00.0", 1, "1002", "73bf", 129)
    (dev / "dri").mkdir(parents=True)
    for name, mode in (("card0", 0o660), ("renderD128", 0o666), ("card1", 0o660)):
        (dev / "dri" / name).write_text("")
        os.chmod(dev / "dri" / name, mode)
    monkeypatch.setattr(Gpu, "sysfs", str(sys))
    monkeypatch.setattr(Gpu, "dev", str(dev))
    return tmp_path


def test_scan_cards(host: Path) -> None:
    cards = scan_cards(str(host / "sys"))
    assert [(c.id, c.pci, c.vendor, c.product) for c in cards] == [
        (0, "0000:00:02.0", "8086", "46a6"), (1, "0000:03:00.0", "1002", "73bf")]
    assert cards[0].nodes == [("card0", 226, 0), ("renderD128", 226, 128)]
    assert scan_cards(str(host / "nowhere")) == []


def _planned(config: dict[str, str], ctx: InstanceContext = CTX) -> list[tuple[str, tuple]]:
    nodes = Gpu("gpu", {"type": "gpu", **config}, ctx).plan_nodes()
    return [(path, (n.kind, n.major, n.minor, oct(n.mode), n.uid, n.gid)) for path, n in nodes]


def test_gpu_selects_every_card_by_default(host: Path) -> None:
    assert _planned({}) == [
        ("/dev/dri/card0", ("c", 226, 0, "0o660", 1_000_000, 1_000_000)),
        ("/dev/dri/renderD128", ("c", 226, 128, "0o666", 1_000_000, 1_000_000)),
        ("/dev/dri/card1", ("c", 226, 1, "0o660", 1_000_000, 1_000_000)),  # no renderD129
    ]


@pytest.mark.parametrize("config", [{"id": "0"}, {"pci": "00:02.0"}, {"vendorid": "8086"},
                                    {"vendorid": "8086", "productid": "46A6"}])
def test_gpu_selects_one_card(host: Path, config: dict[str, str]) -> None:
    assert [p for p, _ in _planned(config)] == ["/dev/dri/card0", "/dev/dri/renderD128"]


def test_gpu_owner_and_mode_keys(host: Path) -> None:
    planned = _planned({"id": "1", "uid": "0", "gid": "44", "mode": "0600"})
    assert planned == [("/dev/dri/card1", ("c", 226, 1, "0o600", 1_000_000, 1_000_044))]


def test_gpu_without_a_match(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidConfig, match="^Failed to find the GPU of device 'gpu': no DRM "
                                            "card matches id=7$"):
        _planned({"id": "7"})
    monkeypatch.setattr(Gpu, "sysfs", str(host / "empty"))
    with pytest.raises(InvalidConfig, match=r"no DRM card matches \(the host has none\)$"):
        _planned({})
