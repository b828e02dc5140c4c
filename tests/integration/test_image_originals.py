"""A pulled image keeps the files the simplestreams server served (hard links, so the
download cache can go), which hash to the fingerprint: what its export serves."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lxmgr.images import lxdformat
from lxmgr.instances import image_ops
from tests.private_state import private_manager
from tests.simplestreams_server import SimpleStreamsServer, build_tree

pytestmark = pytest.mark.kernel  # a real Manager (root)


async def test_pulled_image_keeps_the_served_files(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text("ID=debian\n")
    tree = tmp_path / "tree"
    build_tree(tree, rootfs, serial="20261101_00:00", formats=("root.tar.xz",))
    with private_manager(monkeypatch, "lxmo") as manager:
        async with SimpleStreamsServer(tree) as server:
            image = await image_ops.pull_image(manager, server.url, "debian/12")
        files = lxdformat.original_files(image)
        assert files is not None
        assert [f.name for f in files] == [f"meta-{image.fingerprint}.tar.xz",
                                           f"{image.fingerprint}.tar.xz"]
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
        assert digest == image.fingerprint
        assert all(f.stat().st_nlink == 1 for f in files)  # the download cache is gone
        assert not any(Path(image_ops.cache_dir()).glob(f"*{image.fingerprint}*"))
