"""raw.idmap on real containers: host uid/gid 1000 is uid/gid 1000 inside, so a plain (not
shifted) disk device of a developer's directory shows and keeps their ids both ways, while
other ids keep the base range; and what happens to a change on an existing instance."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel

RAW = "both 1000 1000"
AS_1000 = ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory of our own owned by host uid/gid 1000 (never that user's own files)."""
    src = tmp_path / "code"
    src.mkdir()
    (src / "main.c").write_text("int main(void) { return 0; }\n")
    pub = src / "pub"
    pub.mkdir()
    for path in (src, src / "main.c", pub):
        os.chown(path, 1000, 1000)
    os.chmod(pub, 0o777)
    return src


def _proc_map(pid: int, kind: str) -> list[list[str]]:
    with open(f"/proc/{pid}/{kind}_map") as f:
        return [line.split() for line in f.read().splitlines()]


def test_host_uid_1000_is_uid_1000_inside(manager, checkout: Path) -> None:  # type: ignore[no-untyped-def]
    name = f"r{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", config={"raw.idmap": RAW},
                   devices={"code": {"type": "disk", "source": str(checkout),
                                     "path": "/home/dev/code"}})
    base = int(manager.get(name).config["volatile.idmap.base"])
    manager.start(name)
    pid = manager.state(name)["pid"]
    split = [["0", str(base), "1000"], ["1000", "1000", "1"],
             ["1001", str(base + 1001), "64535"]]
    assert _proc_map(pid, "uid") == _proc_map(pid, "gid") == split
    assert wait_running(manager, name) == "running"

    code, out, err = exec_out(manager, name, ["stat", "-c", "%u:%g", "/home/dev/code",
                                              "/home/dev/code/main.c"])
    assert code == 0, err
    assert out.split() == ["1000:1000", "1000:1000"]
    code, _, err = exec_out(manager, name, [*AS_1000, "sh", "-c",
                                            "echo built > /home/dev/code/out.o"])
    assert code == 0, err
    st = (checkout / "out.o").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    # Any other id keeps base + id, on the disk device and in the rootfs.
    code, _, err = exec_out(manager, name, [
        "setpriv", "--reuid", "1001", "--regid", "1001", "--clear-groups",
        "sh", "-c", "echo x > /home/dev/code/pub/by-1001 && echo y > /tmp/by-1001"])
    assert code == 0, err
    st = (checkout / "pub" / "by-1001").stat()
    assert (st.st_uid, st.st_gid) == (base + 1001, base + 1001)
    code, out, _ = exec_out(manager, name, ["stat", "-c", "%u:%g", "/tmp/by-1001", "/etc"])
    assert out.split() == ["1001:1001", "0:0"]
    # The container's root is still base; it may write in 1000's directory, whose owner
    # its namespace maps (capable_wrt_inode_uidgid).
    code, _, err = exec_out(manager, name, ["touch", "/home/dev/code/by-root"])
    assert code == 0, err
    assert (checkout / "by-root").stat().st_uid == base


def test_a_change_on_an_existing_overlay_instance(manager) -> None:  # type: ignore[no-untyped-def]
    name = f"r{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian")
    base = int(manager.get(name).config["volatile.idmap.base"])
    # Never started: nothing in its upper layer belongs to container uid 1000.
    assert manager.update_config(name, {"raw.idmap": RAW}) == ["raw.idmap"]
    manager.start(name)
    pid = manager.state(name)["pid"]
    assert ["1000", "1000", "1"] in _proc_map(pid, "uid")
    assert wait_running(manager, name) == "running"
    code, _, err = exec_out(manager, name, ["install", "-d", "-o", "1000", "-g", "1000",
                                            "/home/dev"])
    assert code == 0, err
    # While it runs, its processes write host ids of the running map: not now.
    with pytest.raises(Conflict, match=f"Instance '{name}' is running: stop it before "
                                       "changing raw.idmap"):
        manager.update_config(name, {}, unset=["raw.idmap"])
    manager.stop(name, force=True)
    # /home/dev is host uid 1000 in the upper layer: without the entry it would be nobody's.
    with pytest.raises(NotSupported, match=re.escape(
            f"Instance '{name}' cannot change raw.idmap: in its overlay upper layer, "
            "'home/dev': its owner host uid 1000 (container uid 1000 now, none after); lxmgr "
            "does not re-shift files")):
        manager.update_config(name, {}, unset=["raw.idmap"])
    assert manager.get(name).config["raw.idmap"] == RAW
    # Entries that move no file's owner are taken.
    manager.update_config(name, {"raw.idmap": f"{RAW}\nuid 1001 2000"})
    manager.start(name)
    pid = manager.state(name)["pid"]
    assert ["2000", "1001", "1"] in _proc_map(pid, "uid")
    assert ["2001", str(base + 2001), "63535"] in _proc_map(pid, "uid")
    assert ["1001", str(base + 1001), "64535"] in _proc_map(pid, "gid")


def test_refusals(manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="^Invalid raw.idmap: a privileged instance has "):
        manager.create("rpriv", "debian", config={"raw.idmap": RAW,
                                                  "security.privileged": "true"})
    manager.create("rplain", "debian")
    base = int(manager.get("rplain").config["volatile.idmap.base"])
    with pytest.raises(Conflict, match=re.escape(
            f"Invalid raw.idmap entry 'both {base + 5} 1000': host uids {base + 5}-{base + 5} "
            "belong to the map instances without isolation share")):
        manager.create("rbad", "debian", config={"raw.idmap": f"both {base + 5} 1000",
                                                 "security.idmap.isolated": "true"})
    with pytest.raises(InvalidConfig, match="are in this instance's own range"):
        manager.update_config("rplain", {"raw.idmap": f"both {base + 5} 1000"})
    with pytest.raises(InvalidConfig, match="container ids 70000-70000 are outside the map"):
        manager.update_config("rplain", {"raw.idmap": "both 1000 70000"})
    with pytest.raises(InvalidConfig, match="host root"):
        manager.update_config("rplain", {"raw.idmap": "both 0 0"})
    assert sorted(manager.list()) == ["rplain"]
    assert "raw.idmap" not in manager.get("rplain").config


def test_a_change_on_a_dir_pool_waits_for_the_next_start(manager) -> None:  # type: ignore[no-untyped-def]
    """Through an idmapped mount a dir volume keeps container ids on disk: the change is
    taken while the instance runs and applies at its next start, files keeping their ids."""
    source = paths.root() / "rawpool"  # the container's root walks down to its rootfs
    manager.pools.create("rawdir", "dir", {"source": str(source)})
    name = f"r{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", storage="rawdir")
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, _, err = exec_out(manager, name, ["install", "-d", "-o", "1000", "-g", "1000",
                                            "/home/dev"])
    assert code == 0, err
    assert manager.update_config(name, {"raw.idmap": RAW}) == ["raw.idmap"]
    assert ["1000", "1000", "1"] not in _proc_map(manager.state(name)["pid"], "uid")
    manager.stop(name, force=True)
    manager.start(name)
    assert ["1000", "1000", "1"] in _proc_map(manager.state(name)["pid"], "uid")
    code, out, err = exec_out(manager, name, ["stat", "-c", "%u:%g", "/home/dev"])
    assert (code, out.strip()) == (0, "1000:1000"), err
    st = (source / name / "rootfs" / "home" / "dev").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # the container id, on disk
    manager.delete(name, force=True)
    manager.pools.delete("rawdir", [])
