"""A bigger throw-away image for the create-is-constant check, in a private image store.

Imports lxmgr.images.store (metadata helpers). The image is a real copy of the cached rootfs
(never hard links into the shared cache) plus `factor - 1` copies of its /usr under /opt and a
1 GiB allocated file, with its own random fingerprint and the alias `bench-big`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from common import make_private_dir, remove_private_dir

BULK_FILE_BYTES = 1 << 30


class BigImage:
    """store/<fingerprint>/{rootfs,metadata.yaml}; cleanup() removes the store."""

    alias = "bench-big"

    def __init__(self) -> None:
        self.root = make_private_dir("lxmgr-bench-image-")
        self.store = self.root / "images"

    def build(self, source_rootfs: Path, factor: int) -> None:
        """Copy and grow the image (untimed by the benchmark, ~10 s)."""
        from lxmgr.images.store import read_metadata, write_metadata

        fingerprint = os.urandom(32).hex()
        image = self.store / fingerprint
        rootfs = image / "rootfs"
        image.mkdir(parents=True)
        t0 = time.perf_counter()
        _copy(source_rootfs, rootfs)
        for i in range(1, factor):
            _copy(rootfs / "usr", rootfs / "opt" / f"bench-bulk-{i}")
        with open(rootfs / "opt" / "bench-bulk.bin", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, BULK_FILE_BYTES)
        self.build_seconds = time.perf_counter() - t0
        data = read_metadata(source_rootfs.parent)
        data.update(aliases=[self.alias], created_at=int(time.time()))
        data["properties"] = {"description": "lxmgr benchmark: bigger image"}
        self.files, self.bytes = _tree_size(rootfs)
        data["size"] = self.bytes
        write_metadata(image, data)
        self.source_files, self.source_bytes = _tree_size(source_rootfs)

    def describe(self) -> str:
        return (f"{self.files} files / {self.bytes / 2**20:.0f} MiB (base image "
                f"{self.source_files} files / {self.source_bytes / 2**20:.0f} MiB; built "
                f"in {self.build_seconds:.1f} s, untimed)")

    def cleanup(self) -> list[str]:
        warning = remove_private_dir(self.root)
        return [warning] if warning else []


def _copy(src: Path, dest: Path) -> None:
    subprocess.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dest)], check=True)


def _tree_size(root: Path) -> tuple[int, int]:
    """(entries, bytes of regular files) below root, not following symlinks."""
    entries = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        entries += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_mode & 0o170000 == 0o100000:
                size += st.st_size
    return entries, size
