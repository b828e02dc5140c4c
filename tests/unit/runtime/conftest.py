"""Shared builders for runtime unit tests: a RuntimePlan rooted wherever the test wants."""

from __future__ import annotations

from typing import Any

from lxmgr.model.idmap import IdMap
from lxmgr.runtime.plan import RuntimePlan, build_plan

IDMAP = IdMap(1000000, 1000000)
UUID = "0b5e3f2c-4c1d-4c43-9a55-1d2e3f4a5b6c"


def make_plan(rootfs: str = "/var/lib/lxmgr/storage/dir/c1/rootfs", *,
              idmap: IdMap | None = IDMAP, config: dict[str, str] | None = None,
              init_target: str = "/lib/systemd/systemd", **kw: Any) -> RuntimePlan:
    """build_plan with plausible defaults; keyword arguments override."""
    args: dict[str, Any] = {
        "name": "c1",
        "uuid": UUID,
        "config": config or {},
        "storage_root": rootfs.rsplit("/", 1)[0],
        "rootfs": rootfs,
        "rootfs_spec": {"kind": "bind", "target": rootfs, "source": rootfs},
        "idmap": idmap,
        "init_target": init_target,
        "cgroup_procs": ["/sys/fs/cgroup/lxmgr/c1/cgroup.procs"],
        "cgroup_mounts": [("", "cgroup2", "nsdelegate")],
    }
    args.update(kw)
    return build_plan(**args)
