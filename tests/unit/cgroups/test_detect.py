"""detect: mountinfo texts of hybrid, unified and legacy hosts, and fake trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.cgroups.detect import detect, parse_mountinfo, parse_tree
from lxmgr.errors import NotSupported

HYBRID = """\
23 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

UNIFIED = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

LEGACY = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup \
rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw shared:13 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/cpuset rw shared:15 - cgroup cgroup rw,cpuset,clone_children
90 22 0:29 / /var/lib/x/rootfs/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
91 25 0:29 / /sys/fs/cgroup/memory2 rw - cgroup cgroup rw,memory
"""


def test_hybrid_like_this_host() -> None:
    layout = parse_mountinfo(HYBRID)
    assert layout.mode == "hybrid" and layout.driver_name == "v1"
    names = [h.name for h in layout.hierarchies]
    assert names == ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory",
                     "pids", "name=systemd", "unified"]
    assert layout.find("cpu").mountpoint == "/sys/fs/cgroup/cpu"  # type: ignore[union-attr]
    assert layout.find("cpuacct").controllers == ("cpuacct",)  # type: ignore[union-attr]
    assert layout.unified is not None and layout.unified.version == 2
    assert layout.unified.mountpoint == "/sys/fs/cgroup/unified"
    assert layout.hierarchies[-2].is_named


def test_pure_unified() -> None:
    layout = parse_mountinfo(UNIFIED)
    assert layout.mode == "unified" and layout.driver_name == "v2"
    assert [(h.name, h.mountpoint, h.version) for h in layout.hierarchies] == [
        ("unified", "/sys/fs/cgroup", 2)]
    assert layout.v1 == []


def test_legacy_comounts_flags_and_duplicates() -> None:
    layout = parse_mountinfo(LEGACY)
    assert layout.mode == "legacy" and layout.driver_name == "v1"
    assert layout.unified is None
    by_name = {h.name: h for h in layout.hierarchies}
    assert set(by_name) == {"cpu,cpuacct", "net_cls,net_prio", "memory", "cpuset",
                            "name=systemd"}
    assert by_name["cpu,cpuacct"].controllers == ("cpu", "cpuacct")
    assert by_name["cpuset"].controllers == ("cpuset",)  # clone_children is a flag
    assert by_name["memory"].mountpoint == "/sys/fs/cgroup/memory"  # first mount wins
    assert layout.find("cpuacct") is by_name["cpu,cpuacct"]


def test_escaped_mountpoint_and_custom_root() -> None:
    text = "40 31 0:37 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"
    layout = parse_mountinfo(text, "/mnt/my cg")
    assert layout.unified is not None and layout.unified.mountpoint == "/mnt/my cg"


@pytest.mark.parametrize("text", [
    "",
    "23 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n",
    "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n",
])
def test_nothing_usable_is_not_supported(text: str) -> None:
    with pytest.raises(NotSupported):
        parse_mountinfo(text)


def test_detect_accepts_mountinfo_text() -> None:
    assert detect(HYBRID).mode == "hybrid"


def test_detect_fake_trees(tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid"
    for d in ("cpu,cpuacct", "memory", "systemd", "unified", "notacontroller"):
        (hybrid / d).mkdir(parents=True)
    (hybrid / "unified" / "cgroup.controllers").write_text("")
    layout = detect(str(hybrid))
    assert layout.mode == "hybrid"
    assert [h.name for h in layout.hierarchies] == ["cpu,cpuacct", "memory", "name=systemd",
                                                    "unified"]
    pure = tmp_path / "pure"
    pure.mkdir()
    (pure / "cgroup.controllers").write_text("cpu memory pids\n")
    layout = parse_tree(str(pure))
    assert layout.mode == "unified"
    assert layout.hierarchies[0].controllers == ("cpu", "memory", "pids")


def test_detect_real_host() -> None:
    layout = detect()
    assert layout.mode in ("unified", "hybrid", "legacy")
    assert layout.hierarchies
