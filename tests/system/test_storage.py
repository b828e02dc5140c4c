"""Storage pools through the CLI against a real lxmgrd: a btrfs pool on a loop file, an
instance on it with a snapshot restored, the pool deleted with nothing left."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def sh(daemon, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    return daemon.cli("exec", name, "-T", "--", "sh", "-c", script).stdout


@pytest.mark.skipif(shutil.which("mkfs.btrfs") is None, reason="btrfs-progs not installed")
def test_btrfs_loop_pool(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("storage", "create", "bt", "btrfs", "size=1GiB")
    image_file = f"{daemon.root}/storage/disks/bt.img"
    try:
        assert os.path.getsize(image_file) == 1 << 30
        listing = daemon.cli("storage", "list").stdout
        assert "| bt " in listing and "btrfs" in listing
        daemon.cli("launch", "debian", "st1", "-s", "bt")
        sh(daemon, "st1", "echo keep > /srv/f; sync")
        daemon.cli("snapshot", "st1", "s0")
        sh(daemon, "st1", "rm /srv/f; sync")
        daemon.cli("restore", "st1", "s0")
        assert sh(daemon, "st1", "cat /srv/f") == "keep\n"
        info = daemon.cli("storage", "info", "bt").stdout
        assert "driver: btrfs" in info and "instances: st1" in info
        busy = daemon.cli("storage", "delete", "bt", check=False)
        assert busy.returncode == 1 and "used by" in busy.stderr
        daemon.cli("delete", "-f", "st1")
    finally:
        daemon.cli("delete", "-f", "st1", check=False)
        daemon.cli("storage", "delete", "bt", check=False)
    assert not os.path.exists(image_file)
    with open("/proc/self/mountinfo") as f:
        assert f"{daemon.root}/storage/pools/bt" not in f.read()
