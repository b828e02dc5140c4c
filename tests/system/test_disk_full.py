"""A real lxmgrd whose state dir is a small filesystem (a size-limited tmpfs mounted for the
test), filled up during an image unpack, a snapshot and a backup export: each fails with a
one-line "No space left" error (CLI exit 1, failed operation), leaves no staging, partial
directory, tarball or record behind, and once the space is freed the daemon works as before.

The debian image stays in the persistent test cache (a symlink): only what the instance
writes (its overlay upper dir), snapshots, backups, uploads and unpacked images land on the
small filesystem."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.private_state import link_cached_image
from tests.system.conftest import Daemon, _remove_cgroup_base, _stop_lxcfs

pytestmark = [pytest.mark.kernel, pytest.mark.system]

SIZE_MIB = 192


@contextlib.contextmanager
def small_filesystem(size_mib: int) -> Iterator[str]:
    """/tmp/lxmfull-TAG: a tmpfs of size_mib, unmounted and removed afterwards."""
    root = f"/tmp/lxmfull-{uuid.uuid4().hex[:8]}"
    os.makedirs(root)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0711",
                        "lxmgr-test-full", root], check=True)
        try:
            yield root
        finally:
            if subprocess.run(["umount", root]).returncode != 0:
                subprocess.run(["umount", "-l", root], check=False)
    finally:
        os.rmdir(root)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with small_filesystem(SIZE_MIB) as root:
        base = f"lxmgr-test-{os.path.basename(root).split('-')[1]}"
        link_cached_image(root)
        d = Daemon(root, base)
        try:
            d.start()
            yield d
        finally:
            try:
                d.cleanup()
            finally:
                _stop_lxcfs(root)
                _remove_cgroup_base(base)


@contextlib.contextmanager
def filled(root: str) -> Iterator[None]:
    """The filesystem of root full (a file written until ENOSPC), freed afterwards."""
    path = Path(root) / "filler"
    try:
        with open(path, "wb", buffering=0) as f:
            for size in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while f.write(b"\0" * size):
                        pass
        assert os.statvfs(root).f_bavail * os.statvfs(root).f_frsize < (64 << 10)
        yield
    finally:
        path.unlink(missing_ok=True)


def leftovers(root: str) -> list[str]:
    """Staging and partial files the operations in this module may leave."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in dirnames + filenames:
            if name.startswith((".import-", ".export-", "upload-", ".tmp")) or ".tmp-" in name:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Internal error" not in lines[0] and "Errno" not in lines[0], lines[0]
    return lines[0]


def big_image(directory: str, size_mib: int) -> str:
    """A unified image tarball of size_mib of incompressible rootfs data."""
    path = f"{directory}/big.tar"
    metadata = (b"architecture: x86_64\ncreation_date: 1700000000\n"
                b"properties:\n  os: test\n  description: too big\n")
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(metadata)
        tar.addfile(info, io.BytesIO(metadata))
        for name in ("rootfs", "rootfs/sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        with tempfile.TemporaryFile(dir=directory) as blob:
            for _ in range(size_mib):
                blob.write(os.urandom(1 << 20))
            blob.seek(0)
            info = tarfile.TarInfo("rootfs/blob")
            info.size = size_mib << 20
            tar.addfile(info, blob)
    return path


def images(daemon: Daemon) -> list[str]:
    return sorted(daemon.api("GET", "/1.0/images")["metadata"])


def test_image_unpack_on_a_full_disk(daemon: Daemon) -> None:
    before = images(daemon)
    free_mib = os.statvfs(daemon.root).f_bavail * os.statvfs(daemon.root).f_frsize >> 20
    with tempfile.TemporaryDirectory(prefix="lxmfull-img-") as work:
        # The upload fits, its unpacked copy does not.
        tarball = big_image(work, free_mib * 2 // 3)
        error = one_line_error(daemon.cli("image", "import", tarball, "--alias", "big",
                                          check=False))
    assert "No space left on device" in error, error
    assert images(daemon) == before
    assert leftovers(daemon.root) == []
    assert not list(Path(daemon.root, "cache", "uploads").glob("*"))


def snapshots(daemon: Daemon, name: str) -> list[str]:
    return daemon.api("GET", f"/1.0/instances/{name}/snapshots")["metadata"]


def test_snapshot_on_a_full_disk(daemon: Daemon) -> None:
    daemon.cli("launch", "debian", "full1")
    try:
        daemon.cli("exec", "full1", "-T", "--", "sh", "-c",
                   "head -c 8M /dev/urandom > /root/data; sync")
        with filled(daemon.root):
            error = one_line_error(daemon.cli("snapshot", "full1", "s1", check=False))
            assert "No space left on device" in error, error
            assert snapshots(daemon, "full1") == []
            assert leftovers(daemon.root) == []
            assert not Path(daemon.root, "storage", "overlay", ".snapshots", "full1").exists()
            assert not list(Path(daemon.root, "intents").glob("*"))
            assert daemon.cli("exec", "full1", "-T", "--", "true").returncode == 0
        daemon.cli("snapshot", "full1", "s1")
        assert snapshots(daemon, "full1") == ["/1.0/instances/full1/snapshots/s1"]
        out = daemon.cli("exec", "full1", "-T", "--", "sh", "-c", "wc -c < /root/data")
        assert out.stdout.strip() == str(8 << 20)
    finally:
        daemon.cli("delete", "-f", "full1", check=False)


def wait(daemon: Daemon, envelope: dict) -> dict:  # type: ignore[type-arg]
    return daemon.api("GET", f"{envelope['operation']}/wait?timeout=120")["metadata"]


def test_backup_on_a_full_disk(daemon: Daemon) -> None:
    daemon.cli("init", "debian", "full2")
    try:
        backups_dir = Path(daemon.root, "backups")
        with filled(daemon.root):
            op = wait(daemon, daemon.api("POST", "/1.0/instances/full2/backups",
                                         {"name": "b1"}))
            assert op["status"] == "Failure", op
            assert "No space left on device" in op["err"] and "\n" not in op["err"], op
            assert "Internal error" not in op["err"] and "Errno" not in op["err"], op
            assert daemon.api("GET", "/1.0/instances/full2/backups")["metadata"] == []
            assert leftovers(daemon.root) == []
            files = [str(p.relative_to(backups_dir)) for p in backups_dir.rglob("*")
                     if p.is_file()] if backups_dir.exists() else []
            assert files == []
        # Freed, and after a restart: the daemon works as before and holds exactly what it
        # lists (no orphaned storage); a container starts, runs a command, goes.
        daemon.stop()
        daemon.start()
        assert daemon.api("GET", "/1.0/instances")["metadata"] == ["/1.0/instances/full2"]
        pool = Path(daemon.root, "storage", "overlay")
        assert sorted(p for p in os.listdir(pool) if p != ".snapshots") == ["full2"]
        assert not (pool / ".snapshots").exists() or not os.listdir(pool / ".snapshots")
        assert sorted(os.listdir(Path(daemon.root, "instances"))) == ["full2"]
        daemon.cli("launch", "debian", "full3")
        assert daemon.cli("exec", "full3", "-T", "--", "true").returncode == 0
        daemon.cli("delete", "-f", "full3")
    finally:
        daemon.cli("delete", "-f", "full2", check=False)
