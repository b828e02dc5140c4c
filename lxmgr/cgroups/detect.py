"""Cgroup layout detection: which hierarchies are mounted where (unified, hybrid or legacy).

Owns the `Layout` and `Hierarchy` types and the mountinfo parsing that fills them; it reads
/proc/self/mountinfo and cgroup.controllers only. Imports lxmgr.errors; never a driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lxmgr.errors import NotSupported

DEFAULT_ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"

# v1 controllers the kernel knows; every other superblock option (rw, xattr, release_agent=...,
# clone_children, noprefix, cpuset_v2_mode, favordynmods) is a mount flag, not a controller.
V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "debug", "devices", "freezer", "hugetlb", "memory",
    "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
})


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: a v1 controller set, name=systemd, or the v2 tree."""

    name: str
    mountpoint: str
    controllers: tuple[str, ...]
    version: int

    @property
    def is_named(self) -> bool:
        """True for a named v1 hierarchy without controllers (name=systemd)."""
        return self.version == 1 and self.name.startswith("name=")


@dataclass(frozen=True)
class Layout:
    """The host's cgroup mounts; `mode` is unified, hybrid or legacy."""

    mode: str
    hierarchies: list[Hierarchy] = field(default_factory=list)

    @property
    def driver_name(self) -> str:
        """Name of the driver that manages this layout: v2 for unified, else v1."""
        return "v2" if self.mode == "unified" else "v1"

    @property
    def unified(self) -> Hierarchy | None:
        """The cgroup2 mount, if any."""
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def v1(self) -> list[Hierarchy]:
        """Every v1 hierarchy, named ones (name=systemd) included."""
        return [h for h in self.hierarchies if h.version == 1]

    def find(self, controller: str) -> Hierarchy | None:
        """The hierarchy that carries `controller` (v1 first, then the unified one)."""
        for h in self.v1:
            if controller in h.controllers:
                return h
        u = self.unified
        return u if u is not None and controller in u.controllers else None


def detect(root: str = DEFAULT_ROOT) -> Layout:
    """Detect the layout under `root`.

    `root` may also be mountinfo text (tests), or a fake tree made of plain directories
    (`unified/` holding cgroup.controllers, `memory/`, `cpu,cpuacct/`, `systemd/`, ...).
    """
    if "\n" in root:
        return parse_mountinfo(root)
    root = os.path.normpath(root)
    with open(MOUNTINFO, encoding="utf-8") as f:
        text = f.read()
    try:
        layout = parse_mountinfo(text, root)
    except NotSupported:
        if not os.path.isdir(root):
            raise
        return parse_tree(root)
    return _with_v2_controllers(layout)


def parse_mountinfo(text: str, root: str = DEFAULT_ROOT) -> Layout:
    """PURE: build a Layout from mountinfo text, keeping cgroup mounts at or below `root`."""
    found: dict[tuple[int, tuple[str, ...]], Hierarchy] = {}
    for line in text.splitlines():
        h = _parse_line(line)
        if h is None or not _is_under(h.mountpoint, root):
            continue
        key = (h.version, (h.name,) if h.is_named else h.controllers)
        found.setdefault(key, h)  # first mount wins; later ones are bind mounts
    return _build_layout(list(found.values()))


def parse_tree(root: str) -> Layout:
    """Build a Layout from a fake tree of plain directories (tests)."""
    if os.path.isfile(os.path.join(root, "cgroup.controllers")):
        return _build_layout([_v2_hierarchy(root)])
    hierarchies: list[Hierarchy] = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if not os.path.isdir(path):
            continue
        if os.path.isfile(os.path.join(path, "cgroup.controllers")):
            hierarchies.append(_v2_hierarchy(path))
        elif entry == "systemd":
            hierarchies.append(Hierarchy("name=systemd", path, (), 1))
        else:
            ctrls = tuple(c for c in entry.split(",") if c in V1_CONTROLLERS)
            if ctrls:
                hierarchies.append(Hierarchy(",".join(ctrls), path, ctrls, 1))
    return _build_layout(hierarchies)


def _parse_line(line: str) -> Hierarchy | None:
    fields = line.split()
    if "-" not in fields:
        return None
    sep = fields.index("-")
    if len(fields) < sep + 4 or sep < 5:
        return None
    fstype, superopts = fields[sep + 1], fields[sep + 3]
    mountpoint = _unescape(fields[4])
    if fstype == "cgroup2":
        return Hierarchy("unified", mountpoint, (), 2)
    if fstype != "cgroup":
        return None
    opts = superopts.split(",")
    named = [o for o in opts if o.startswith("name=")]
    ctrls = tuple(sorted(o for o in opts if o in V1_CONTROLLERS))
    if ctrls:
        return Hierarchy(",".join(ctrls), mountpoint, ctrls, 1)
    if named:
        return Hierarchy(named[0], mountpoint, (), 1)
    return None


def _unescape(path: str) -> str:
    """mountinfo octal-escapes space, tab, newline and backslash."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _build_layout(hierarchies: list[Hierarchy]) -> Layout:
    if not hierarchies:
        raise NotSupported("No cgroup hierarchy is mounted")
    has_v2 = any(h.version == 2 for h in hierarchies)
    has_v1_ctrl = any(h.version == 1 and h.controllers for h in hierarchies)
    if has_v2 and has_v1_ctrl:
        mode = "hybrid"
    elif has_v2:
        mode = "unified"
    elif has_v1_ctrl:
        mode = "legacy"
    else:
        raise NotSupported("Only named cgroup v1 hierarchies are mounted; no controller found")
    order = sorted(hierarchies, key=lambda h: (h.version == 2, h.is_named, h.name))
    return Layout(mode, order)


def _v2_hierarchy(path: str) -> Hierarchy:
    return Hierarchy("unified", path, read_controllers(path), 2)


def read_controllers(path: str) -> tuple[str, ...]:
    """The controllers listed in `path`/cgroup.controllers; () when unreadable."""
    try:
        with open(os.path.join(path, "cgroup.controllers"), encoding="ascii") as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def _with_v2_controllers(layout: Layout) -> Layout:
    hierarchies = [
        _v2_hierarchy(h.mountpoint) if h.version == 2 else h for h in layout.hierarchies
    ]
    return Layout(layout.mode, hierarchies)
