"""The idmapped-overlay probe: can this kernel mount overlayfs over an idmapped lower?

Imports lxmgr.linux, lxmgr.model, lxmgr.paths, lxmgr.errors. The probe mounts recipe A2 of
kernel-facts.md in a private mount namespace of a fresh process (`python -m
lxmgr.storage.mount DIR`), never a fork of the caller: the daemon is multi-threaded and
must not fork to run Python code. runtime.rootfs.mount_rootfs mounts real instances.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile

from lxmgr import paths
from lxmgr.errors import KernelError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.idmapped import idmapped_clone, open_userns_fd
from lxmgr.model.idmap import IdMap
from lxmgr.model.rootfs import RootfsSpec

PROBE_IDMAP = IdMap(uid_base=1000000, gid_base=1000000)


@functools.cache
def supports_idmapped_overlay() -> bool:
    """Probe (once per process) recipe A2 on a tiny tree, in a child's private mntns."""
    base = paths.storage_dir()
    base.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".probe-", dir=base)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, sub))
        with open(os.path.join(tmp, "lower", "f"), "w"):
            pass
        for sub in ("upper", "work"):
            os.chown(os.path.join(tmp, sub), PROBE_IDMAP.uid_base, PROBE_IDMAP.gid_base)
        proc = subprocess.run([sys.executable, "-P", "-S", "-m", "lxmgr.storage.mount", tmp],
                              env=_child_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
        return proc.returncode == 0
    finally:
        shutil.rmtree(tmp)


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": paths.child_pythonpath()}


def run_probe(tmp: str) -> int:
    """In a fresh process: mount the probe tree; 0 when idmapped overlay works."""
    spec = RootfsSpec("overlay", f"{tmp}/merged", lower=f"{tmp}/lower", upper=f"{tmp}/upper",
                      work=f"{tmp}/work", idmap_lower=True)
    try:
        libc.unshare(c.CLONE_NEWNS)
        libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE)
        userns_fd = open_userns_fd(PROBE_IDMAP.uid_map_text(), PROBE_IDMAP.gid_map_text())
        lower = idmapped_clone(spec.lower, userns_fd, readonly=True)
        data = spec.overlay_options(f"/proc/self/fd/{lower}")
        libc.mount("overlay", spec.target, "overlay", 0, data)
    except (OSError, KernelError):
        return 1
    return 0 if os.stat(f"{tmp}/merged/f").st_uid == PROBE_IDMAP.uid_base else 1


def require_idmapped_overlay() -> None:
    """KernelError naming the missing feature, for callers that cannot fall back."""
    if not supports_idmapped_overlay():
        raise KernelError("This kernel cannot mount overlayfs over an idmapped lower layer")


if __name__ == "__main__":
    sys.exit(run_probe(sys.argv[1]))
