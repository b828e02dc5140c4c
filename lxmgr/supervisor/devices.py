"""Hot-plug of the device-node devices (unix-char, unix-block, gpu) of a running container,
for the supervisor: its cgroup's device access list and the node mounts, both kept in the
plan so a reboot from inside brings them back (the boot applies plan.cgroup_device_rules()
and mounts plan.disks).

Plug: allow the nodes, then mount them; unplug: unmount, then take the rules away. Either
way a failure leaves the container as it was. Descriptors opened before an unplug keep
working (the kernel checks the list at open), as with LXD. Imports runtime, cgroups and
errors; SYNCHRONOUS (mounts go through runtime.disks' forked helper).
"""

from __future__ import annotations

import logging

from lxmgr.cgroups.base import CgroupDriver
from lxmgr.errors import LxmgrError
from lxmgr.runtime import disks
from lxmgr.runtime.disks import DiskMount
from lxmgr.runtime.plan import RuntimePlan

log = logging.getLogger(__name__)


def attach(plan: RuntimePlan, cgroups: CgroupDriver, init_pid: int, owner: tuple[int, int],
           device: str, mounts: list[DiskMount], rules: list[str]) -> None:
    """Plug `device`: its rules join the access list, its nodes are mounted."""
    previous = plan.device_rules.get(device)
    plan.device_rules[device] = list(rules)
    done: list[DiskMount] = []
    try:
        cgroups.apply_devices(plan.name, plan.cgroup_device_rules())
        for mount in mounts:
            disks.in_container(init_pid, "attach", mount, False, owner)
            done.append(mount)
    except BaseException:
        for mount in reversed(done):
            _quietly(disks.in_container, init_pid, "detach", mount, False, owner)
        if previous is None:
            plan.device_rules.pop(device, None)
        else:
            plan.device_rules[device] = previous
        _quietly(cgroups.apply_devices, plan.name, plan.cgroup_device_rules())
        raise
    plan.disks = [d for d in plan.disks if d.get("device") != device]
    plan.disks += [m.to_dict() for m in mounts]


def detach(plan: RuntimePlan, cgroups: CgroupDriver, init_pid: int, device: str) -> None:
    """Unplug `device`: unmount its nodes, then drop its rules."""
    for data in [d for d in plan.disks if d.get("device") == device]:
        disks.in_container(init_pid, "detach", DiskMount.from_dict(data), False, (0, 0))
        plan.disks.remove(data)
    if plan.device_rules.pop(device, None) is not None:
        cgroups.apply_devices(plan.name, plan.cgroup_device_rules())


def _quietly(action, *args) -> None:  # type: ignore[no-untyped-def]
    """An undo step: its failure is logged, the original error is what the caller sees."""
    try:
        action(*args)
    except (LxmgrError, OSError) as err:
        log.error("Undoing a device hot-plug failed: %s", err)
