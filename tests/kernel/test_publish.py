"""Publishing an instance or a snapshot as an image, and booting from it."""

from __future__ import annotations

import os

import pytest

from lxmgr.errors import Conflict
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def sh(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["sh", "-c", script])
    assert code == 0, err
    return out


def test_publish_instance_and_snapshot(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("pb1", "debian")
    manager.start("pb1")
    assert wait_running(manager, "pb1") == "running"
    sh(manager, "pb1", "useradd -u 1234 app; echo v1 > /srv/app.txt; chown app /srv/app.txt;"
                       " rm /usr/bin/less; sync")
    manager.snapshot("pb1", "s1")
    sh(manager, "pb1", "echo v2 > /srv/app.txt; sync")
    with pytest.raises(Conflict, match="running"):
        manager.publish("pb1")
    from_snap = manager.publish("pb1/s1", aliases=("pub-snap",))
    manager.stop("pb1", force=True)
    image = manager.publish("pb1", aliases=("pub-live",), properties={"description": "mine"})
    assert image.description == "mine" and "pub-live" in image.aliases
    st = os.lstat(image.rootfs / "srv" / "app.txt")
    assert (st.st_uid, (image.rootfs / "srv" / "app.txt").read_text()) == (1234, "v2\n")
    assert not (image.rootfs / "usr" / "bin" / "less").exists()  # the whiteout applied
    assert (from_snap.rootfs / "srv" / "app.txt").read_text() == "v1\n"
    with pytest.raises(Conflict, match="pub-live"):
        manager.publish("pb1", aliases=("pub-live",))
    manager.create("pb2", "pub-snap")
    manager.start("pb2")
    assert wait_running(manager, "pb2") == "running"
    assert sh(manager, "pb2", "stat -c %U /srv/app.txt; cat /srv/app.txt; hostname") == \
        "app\nv1\npb2\n"
    manager.delete("pb2", force=True)
    manager.delete("pb1")
    for fp in (image.fingerprint, from_snap.fingerprint):
        manager.delete_image(fp)
