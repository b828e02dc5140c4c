"""`lxmgr image export` of an imported split image against a real lxmgrd: the two original
files (LXD's multipart export split by the client), which hash to the fingerprint."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def _tar(path: Path, members: dict[str, bytes], mode: str) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1764028800
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cli_exports_a_split_image_as_its_two_files(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    meta = _tar(tmp_path / "lxd.tar.xz", {"metadata.yaml": b"architecture: x86_64\n"}, "w:xz")
    rootfs = _tar(tmp_path / "rootfs.tar.gz", {"etc/os-release": b"ID=split\n"}, "w:gz")
    daemon.cli("image", "import", str(meta), str(rootfs), "--alias", "split-export")
    fp = hashlib.sha256(meta.read_bytes() + rootfs.read_bytes()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    try:
        printed = daemon.cli("image", "export", "split-export", str(out)).stdout
        files = sorted(out.iterdir())
        assert [f.name for f in files] == [f"{fp}.tar.gz", f"meta-{fp}.tar.xz"]
        assert str(out / f"meta-{fp}.tar.xz") in printed
        assert files[1].read_bytes() == meta.read_bytes()
        assert files[0].read_bytes() == rootfs.read_bytes()
        refused = daemon.cli("image", "export", "split-export", str(out / "one-file"),
                             check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith(
            f"A split image is exported to a directory: '{out / 'one-file'}' is not one")
        assert sorted(out.iterdir()) == files
    finally:
        daemon.cli("image", "delete", "split-export")
