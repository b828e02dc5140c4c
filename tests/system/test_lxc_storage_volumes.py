"""LXD's own `lxc` client drives custom volumes on a real lxmgrd: create, list, show, set,
attach to a running container, snapshot, restore, copy, move to another pool, rename,
detach and delete, as `lxc storage volume` sends them (the storage_api_volume_snapshots,
storage_api_volume_rename and storage_api_local_volume_handling extensions)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.system.test_lxc_client import lxc  # noqa: F401 - the fixture

pytestmark = [pytest.mark.kernel, pytest.mark.system,
              pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")]


def test_lxc_storage_volume_flow(lxc, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    lxc("storage", "create", "lxm:p2", "dir", f"source={tmp_path / 'p2'}")
    lxc("storage", "volume", "create", "lxm:default", "data", "user.owner=me")
    lxc("launch", "lxm:debian", "lxm:lv1")
    lxc("storage", "volume", "attach", "lxm:default", "data", "lv1", "/srv/data")
    lxc("exec", "lxm:lv1", "--", "sh", "-c", "echo one > /srv/data/f")
    vols = json.loads(lxc("storage", "volume", "list", "lxm:default", "--format",
                          "json").stdout)
    data = next(v for v in vols if v["name"] == "data")
    assert data["type"] == "custom" and data["used_by"] == ["/1.0/instances/lv1"]
    assert "user.owner: me" in lxc("storage", "volume", "show", "lxm:default", "data").stdout
    lxc("storage", "volume", "set", "lxm:default", "data", "user.k=v")
    assert lxc("storage", "volume", "get", "lxm:default", "data", "user.k").stdout == "v\n"
    busy = lxc("storage", "volume", "delete", "lxm:default", "data", check=False)
    assert busy.returncode != 0 and "The storage volume is still in use" in busy.stderr
    lxc("storage", "volume", "snapshot", "lxm:default", "data", "s0")
    lxc("exec", "lxm:lv1", "--", "sh", "-c", "echo two > /srv/data/f")
    lxc("storage", "volume", "detach", "lxm:default", "data", "lv1")
    lxc("storage", "volume", "restore", "lxm:default", "data", "s0")
    lxc("storage", "volume", "copy", "lxm:default/data", "lxm:default/copy")
    lxc("storage", "volume", "move", "lxm:default/copy", "lxm:p2/moved")
    lxc("storage", "volume", "rename", "lxm:p2", "moved", "kept")
    lxc("storage", "volume", "attach", "lxm:p2", "kept", "lv1", "/mnt")
    assert lxc("exec", "lxm:lv1", "--", "cat", "/mnt/f").stdout == "one\n"
    lxc("storage", "volume", "detach", "lxm:p2", "kept", "lv1")
    lxc("storage", "volume", "delete", "lxm:p2", "kept")
    lxc("storage", "volume", "delete", "lxm:default", "data")
    lxc("delete", "--force", "lxm:lv1")
    lxc("storage", "delete", "lxm:p2")
