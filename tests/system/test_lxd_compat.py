"""An image built by lxmgr imports into LXD and back: LXD computes the same fingerprint,
exports the same bytes, and lxmgr re-imports the same tree (minus /dev's device nodes,
which images carry none of).

LXD is Debian 12's `lxd` package (.ci/setup installs it, starting none of its services).
The test runs its own daemon the way bench/api.py does (bench/api_lxd.py's LxdSide): LXD_DIR
in a private dir, a network namespace of its own with only lo, HTTP(S)_PROXY at a port
where nothing listens (offline), then `lxd shutdown` and every trace of it removed; what
could not be removed fails the test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lxmgr.images import lxdformat
from lxmgr.images.store import ImageStore
from tests.image_cache import cached_debian_image

pytestmark = [pytest.mark.kernel, pytest.mark.system]
BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.skipif(shutil.which("lxd") is None or shutil.which("lxc") is None,
                    reason="LXD is not installed (.ci/setup installs Debian's lxd)")
def test_lxmgr_image_through_lxd_and_back() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from api_lxd import LxdSide
    finally:
        sys.path.remove(str(BENCH))
    image = cached_debian_image()
    work = Path(tempfile.mkdtemp(prefix="lxmt-lxdrt-", dir="/var/tmp"))
    side = LxdSide(prefix="lxmt-lxd-")
    try:
        tarball = lxdformat.export_image(image, work)
        fingerprint = tarball.name.split(".")[0]
        side.start(image.path)
        side.cli("image", "import", str(tarball), "--alias", "from-lxmgr", timeout=600)
        info = side.cli("image", "info", "from-lxmgr").stdout
        assert f"Fingerprint: {fingerprint}" in info
        back = work / "back"
        back.mkdir()
        side.cli("image", "export", "from-lxmgr", f"{back}/", timeout=600)
        files = sorted(back.iterdir())
        assert [f.name for f in files] == [tarball.name]
        (work / "store").mkdir()
        again = lxdformat.import_image(files, ImageStore(work / "store"))
        assert again.fingerprint == fingerprint
        diff = subprocess.run(["diff", "-r", "--no-dereference", "-q", str(image.rootfs),
                               str(again.rootfs)], capture_output=True, text=True).stdout
        assert all(line.startswith(f"Only in {image.rootfs}/dev:")
                   for line in diff.splitlines()), diff
    finally:
        leftovers = side.cleanup()
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    assert leftovers == []
