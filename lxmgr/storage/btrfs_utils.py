"""Helpers of the `btrfs` driver: subvolume trees, read-only flags, qgroups, pool usage.

Imports lxmgr.linux (btrfs ioctls, commands) only; never lxmgr.instances. Functions here
raise OSError or CommandError; the driver translates them at its boundary. Subvolume work
goes through ioctls (lxmgr.linux.btrfs); qgroups go through the `btrfs` tool (btrfs-progs):
their ioctls take search-tree walks to read back and the tool is what administrators debug
with.

Quota cost: once `btrfs quota enable` has run on a pool, the kernel accounts every extent
to its subvolumes' qgroups at each transaction commit. Snapshot creation and deletion of
large volumes, balance and heavy write loads get measurably slower, and the first enable
rescans the whole filesystem. So quotas are switched on only by the first set_size(), never
by pool creation.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lxmgr.linux import btrfs, commands

log = logging.getLogger(__name__)


# -- subvolumes --------------------------------------------------------------------------------

def set_readonly(path: Path, readonly: bool) -> None:
    """Set or clear BTRFS_SUBVOL_RDONLY on the subvolume at path."""
    flags = btrfs.subvol_getflags(path)
    new = flags | btrfs.BTRFS_SUBVOL_RDONLY if readonly else flags & ~btrfs.BTRFS_SUBVOL_RDONLY
    if new != flags:
        btrfs.subvol_setflags(path, new)


def is_readonly(path: Path) -> bool:
    """True when the subvolume at path has BTRFS_SUBVOL_RDONLY."""
    return bool(btrfs.subvol_getflags(path) & btrfs.BTRFS_SUBVOL_RDONLY)


def nested_subvolumes(root: Path) -> list[Path]:
    """Subvolumes strictly below root, deepest first (the order they can be deleted in).

    Walks the tree (O(entries)); only called when deleting root said ENOTEMPTY. Symlinks are
    not followed and a subvolume is not entered twice.
    """
    found: list[Path] = []
    for path in _walk_dirs(root):
        if path != root and btrfs.is_subvolume(path):
            found.append(path)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _walk_dirs(root: Path) -> Iterator[Path]:
    stack = [root]
    while stack:
        current = stack.pop()
        yield current
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        stack.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def delete_subvolume_tree(path: Path) -> None:
    """Delete the subvolume at path and every subvolume nested in it (docker-in-container).

    Fast path: one BTRFS_IOC_SNAP_DESTROY. On ENOTEMPTY, make the tree writable (removing a
    nested subvolume's name writes its parent directory), delete the nested ones deepest
    first, then path. A missing path is fine.
    """
    if not path.exists():
        return
    try:
        btrfs.snap_destroy(path)
        return
    except OSError as err:
        if err.errno != errno.ENOTEMPTY:
            raise
    set_readonly(path, False)
    nested = nested_subvolumes(path)
    for sub in nested:
        set_readonly(sub, False)
    for sub in nested:
        btrfs.snap_destroy(sub)
    btrfs.snap_destroy(path)


# -- qgroups (btrfs-progs) -----------------------------------------------------------------------

@dataclass(frozen=True)
class Qgroup:
    """One row of `btrfs qgroup show -re --raw`: sizes in bytes, None when unlimited."""

    qgroupid: str
    referenced: int
    exclusive: int
    max_referenced: int | None
    max_exclusive: int | None


def parse_qgroup_show(text: str) -> list[Qgroup]:
    """PURE: parse `btrfs qgroup show -re --raw` output (columns found by their headers,
    whose case and set changed across btrfs-progs versions)."""
    rows: list[Qgroup] = []
    columns: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or set(line.strip()) <= {"-", " "}:
            continue
        if fields[0].lower() == "qgroupid":
            columns = [f.lower() for f in _header_fields(line)]
            continue
        if not columns or "/" not in fields[0]:
            continue
        values = dict(zip(columns, fields, strict=False))
        rows.append(Qgroup(values["qgroupid"], int(values.get("rfer", 0)),
                           int(values.get("excl", 0)), _limit(values.get("max_rfer")),
                           _limit(values.get("max_excl"))))
    return rows


def _header_fields(line: str) -> list[str]:
    """Header words joined as column keys ("Max referenced" -> "max_rfer")."""
    text = line.lower()
    for long, short in (("max referenced", "max_rfer"), ("max exclusive", "max_excl"),
                        ("referenced", "rfer"), ("exclusive", "excl")):
        text = text.replace(long, short)
    return text.split()


def _limit(value: str | None) -> int | None:
    if value is None or value == "none":
        return None
    return int(value)


def build_limit_argv(path: Path, size_bytes: int | None) -> list[str]:
    """PURE: the argv setting (or with None, removing) path's referenced-bytes limit."""
    if size_bytes is not None and size_bytes <= 0:
        raise ValueError(f"Invalid size {size_bytes}")
    size = "none" if size_bytes is None else str(size_bytes)
    return ["btrfs", "qgroup", "limit", size, str(path)]


def quota_enabled(pool: Path) -> bool:
    """Quotas are on when /sys/fs/btrfs/<fsid>/qgroups exists (Linux 5.9+)."""
    return Path("/sys/fs/btrfs", btrfs.fs_uuid(pool), "qgroups").is_dir()


def enable_quota(pool: Path) -> None:
    """`btrfs quota enable`, then wait for the rescan it starts (limits are exact after)."""
    commands.run(["btrfs", "quota", "enable", str(pool)])
    commands.run(["btrfs", "quota", "rescan", "-W", str(pool)])


def qgroup_of(path: Path) -> Qgroup | None:
    """The level-0 qgroup of the subvolume at path; None when quotas are off."""
    proc = commands.run(["btrfs", "qgroup", "show", "-re", "--raw", "-f", str(path)],
                        check=False)
    if proc.returncode != 0:
        return None
    own = f"0/{btrfs.subvol_id(path)}"
    return next((q for q in parse_qgroup_show(proc.stdout) if q.qgroupid == own), None)


def set_limit(path: Path, size_bytes: int | None) -> None:
    """Limit the referenced bytes of the subvolume at path (None: no limit)."""
    commands.run(build_limit_argv(path, size_bytes))


def limit_subvolume(pool: Path, path: Path, size_bytes: int | None) -> None:
    """Limit the referenced bytes of the subvolume at path (None: no limit), enabling
    quotas on the pool first when they are off (costly, see above)."""
    if not quota_enabled(pool):
        log.info("Enabling btrfs quotas on pool '%s'", pool)
        enable_quota(pool)
    set_limit(path, size_bytes)


def limit_of(pool: Path, path: Path) -> int | None:
    """The referenced-bytes limit of the subvolume at path; None without one or quotas."""
    if not quota_enabled(pool):
        return None
    group = qgroup_of(path)
    return group.max_referenced if group else None


def swap_in_snapshot(vol: Path, snap: Path, fresh: Path, old: Path, limit: int | None) -> None:
    """Restore: a writable snapshot of snap at fresh (vol's qgroup limit carried over) takes
    vol's place, vol moves to old (the caller deletes it); undone if a step fails."""
    with contextlib.ExitStack() as revert:
        btrfs.snap_create(snap, fresh)
        revert.callback(delete_subvolume_tree, fresh)
        if limit is not None:
            set_limit(fresh, limit)
        os.rename(vol, old)
        revert.callback(os.rename, old, vol)
        os.rename(fresh, vol)
        revert.pop_all()


def delete_subvolume_and_qgroup(pool: Path, path: Path) -> None:
    """Delete a subvolume tree and (with quotas on) its qgroup; missing is fine."""
    if not path.exists():
        return
    quota = quota_enabled(pool)
    subvol = btrfs.subvol_id(path) if quota else 0
    delete_subvolume_tree(path)
    if quota:
        destroy_qgroup(pool, subvol)


def destroy_qgroup(pool: Path, subvol_id: int) -> None:
    """Best effort: drop the qgroup of a deleted subvolume (the kernel refuses while the
    cleaner still owns the subvolume; newer kernels drop it themselves when done)."""
    proc = commands.run(["btrfs", "qgroup", "destroy", f"0/{subvol_id}", str(pool)],
                        check=False)
    if proc.returncode != 0:
        log.debug("qgroup 0/%d left on %s: %s", subvol_id, pool, proc.stderr.strip())


# -- pool ----------------------------------------------------------------------------------------

def pool_usage(pool: Path) -> dict[str, int]:
    """Total, used and free bytes of the filesystem holding pool (statvfs; btrfs reports
    data space, so metadata-heavy pools look a little emptier than `btrfs fi usage`)."""
    st = os.statvfs(pool)
    total = st.f_blocks * st.f_frsize
    return {"total": total, "used": total - st.f_bfree * st.f_frsize,
            "free": st.f_bavail * st.f_frsize}
