"""PURE: an expanded instance config -> RuntimePlan, everything the child needs to set up.

The plan is data (JSON-serialisable) so the supervisor can read it from disk and so unit tests
can assert on it. Imports only model-level and stdlib modules; no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from dataclasses import dataclass, field
from typing import Any

from lxmgr.linux import consts as c
from lxmgr.model.idmap import IdMap
from lxmgr.model.project import storage_parts
from lxmgr.model.units import parse_bool

CONTAINER_ENV_NAME = "lxmgr"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Capabilities removed from the bounding set, with the reason for each row.
CAPS_DROP_UNPRIVILEGED: tuple[tuple[str, str], ...] = (
    ("sys_module", "module loading is never allowed from a container"),
    ("sys_rawio", "raw I/O ports and /dev/mem"),
    ("sys_time", "the clock is global, not namespaced"),
    ("mac_admin", "MAC policy belongs to the host"),
    ("mac_override", "MAC policy belongs to the host"),
    ("audit_control", "audit is not namespaced (systemd CONTAINER_INTERFACE)"),
    ("audit_read", "audit is not namespaced"),
)
CAPS_DROP_PRIVILEGED: tuple[tuple[str, str], ...] = CAPS_DROP_UNPRIVILEGED + (
    ("sys_boot", "without a user namespace reboot(2) could reach the host"),
    ("wake_alarm", "host power management"),
    ("block_suspend", "host power management"),
)

# The default seccomp deny list (security.syscalls.deny_default=true), LXD 5.0's
# defaultSeccompPolicy (lxd/seccomp/seccomp.go, tag lxd-5.0.9): "[all] <name> errno 38", so
# each fails with ENOSYS on every ABI the filter admits, plus "reject_force_umount" (liblxc
# src/lxc/seccomp.c: umount2() with MNT_FORCE fails with EACCES). One row is ours.
SECCOMP_DENY: tuple[tuple[str, str], ...] = (
    ("kexec_load", "loads a new kernel"),
    ("open_by_handle_at", "bypasses path checks (the 'shocker' escape)"),
    ("init_module", "loads kernel code"),
    ("finit_module", "loads kernel code"),
    ("delete_module", "unloads kernel code"),
    ("kexec_file_load", "loads a new kernel: kexec_load's twin (Linux 3.17), not in LXD's list"),
)

# /proc files hidden behind /dev/null (Docker MaskedPaths, nspawn PROC_INACCESSIBLE_REG).
PROC_MASKED = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats")
# /proc files made read-only (LXC proc:mixed); /proc/sys is read-only except sys/net.
PROC_READ_ONLY_FILES = ("sysrq-trigger",)

# Device nodes bind-mounted from the host /dev (systemd CONTAINER_INTERFACE list).
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# The device access list of every container (its cgroup's, lxmgr.cgroups.devices): the nodes
# above and its ptys, nothing else; devices add their own rows (RuntimePlan.device_rules).
# LXD applies the same list to privileged containers (driver_lxc.go, "Configure devices
# cgroup"), LXC's common.conf to all; lxmgr applies it to all, without the rows for nodes
# it does not give containers (/dev/fuse, /dev/net/tun: unix-char devices add them).
DEVICE_RULES = [
    "c *:* m",  # mknod of any char device (not its use), as LXC and LXD allow
    "b *:* m",  # mknod of any block device (not its use)
    "c 1:3 rwm",  # /dev/null
    "c 1:5 rwm",  # /dev/zero
    "c 1:7 rwm",  # /dev/full
    "c 1:8 rwm",  # /dev/random
    "c 1:9 rwm",  # /dev/urandom
    "c 5:0 rwm",  # /dev/tty
    "c 5:2 rwm",  # /dev/ptmx (pts/ptmx of the container's devpts)
    "c 136:* rwm",  # /dev/pts/*, and /dev/console and /dev/ttyN (host ptys bound in)
]
DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
)


@dataclass
class RuntimePlan:
    """Everything the supervisor and the container child need to start one container."""

    name: str
    uuid: str
    storage_root: str  # the instance's own storage directory; rootfs must be inside it
    rootfs: str  # where the rootfs is mounted (inside the child's private mount namespace)
    rootfs_spec: dict[str, Any]  # a model.rootfs.RootfsSpec as a dict
    idmap: IdMap | None  # None = privileged
    hostname: str
    init: list[str] = field(default_factory=lambda: ["/sbin/init"])
    env: dict[str, str] = field(default_factory=dict)
    namespaces: int = c.ALL_NAMESPACES
    cgroup_procs: list[str] = field(default_factory=list)
    cgroup_mounts: list[tuple[str, str, str]] = field(default_factory=list)
    caps_drop: list[str] = field(default_factory=list)
    seccomp_deny_default: bool = True  # SECCOMP_DENY and no forced umount
    seccomp_deny: list[str] = field(default_factory=list)  # security.syscalls.deny: EPERM
    seccomp_deny_compat: bool = False  # no 32-bit (i386, x32) syscalls on x86_64
    ttys: int = 1
    stop_signal: int = int(signal.SIGRTMIN) + 3
    # device name -> its device cgroup rules (unix-char, unix-block, gpu), on top of
    # DEVICE_RULES; the supervisor keeps it current across hot-plugs.
    device_rules: dict[str, list[str]] = field(default_factory=dict)
    disks: list[dict[str, Any]] = field(default_factory=list)  # runtime.disks.DiskMount dicts
    # [source, target] binds of lxcfs files over /proc and /sys (runtime.lxcfs), set by the
    # manager when an lxcfs answers; empty: the container sees the kernel's own files.
    lxcfs: list[list[str]] = field(default_factory=list)
    nesting: bool = False  # security.nesting: clean proc and sysfs at /dev/.lxc (as LXD)

    @property
    def privileged(self) -> bool:
        return self.idmap is None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RuntimePlan:
        data = json.loads(text)
        idmap = data.pop("idmap")
        data["cgroup_mounts"] = [tuple(m) for m in data["cgroup_mounts"]]
        return cls(idmap=IdMap(**idmap) if idmap else None, **data)

    def cgroup_device_rules(self) -> list[str]:
        """The container's whole device access list: DEVICE_RULES, then its devices'."""
        return DEVICE_RULES + [r for name in sorted(self.device_rules)
                               for r in self.device_rules[name]]

    def describe(self) -> str:
        mode = "privileged" if self.privileged else f"idmap {self.idmap}"
        return f"container {self.name} ({mode}) rootfs {self.rootfs} init {self.init}"


def stop_signal_for(init_target: str) -> int:
    """systemd halts on SIGRTMIN+3; sysvinit, busybox and others power off on SIGPWR."""
    if "systemd" in init_target:
        return int(signal.SIGRTMIN) + 3
    return int(signal.SIGPWR)


def seccomp_deny_list(value: str) -> list[str]:
    """security.syscalls.deny: one syscall name a line; blank lines and repeats dropped."""
    return list(dict.fromkeys(line.strip() for line in value.splitlines() if line.strip()))


def build_plan(
    *,
    name: str,
    uuid: str,
    config: dict[str, str],
    storage_root: str,
    rootfs: str,
    rootfs_spec: dict[str, Any],
    idmap: IdMap | None,
    init_target: str,
    cgroup_procs: list[str],
    cgroup_mounts: list[tuple[str, str, str]],
    disks: list[dict[str, Any]] | None = None,
    device_rules: dict[str, list[str]] | None = None,
) -> RuntimePlan:
    """Decide how to run the container from its expanded config; no I/O."""
    privileged = idmap is None
    namespaces = c.ALL_NAMESPACES & ~c.CLONE_NEWUSER if privileged else c.ALL_NAMESPACES
    drops = CAPS_DROP_PRIVILEGED if privileged else CAPS_DROP_UNPRIVILEGED
    # systemd's Container Interface: PID 1 gets container= and container_uuid= and nothing else.
    env = {"container": CONTAINER_ENV_NAME, "container_uuid": uuid}
    return RuntimePlan(
        name=name,
        uuid=uuid,
        storage_root=storage_root,
        rootfs=rootfs,
        rootfs_spec=rootfs_spec,
        idmap=idmap,
        hostname=storage_parts(name)[1],  # a project's instance is stored as PROJECT_NAME
        init=["/sbin/init"],
        env=env,
        namespaces=namespaces,
        cgroup_procs=list(cgroup_procs),
        cgroup_mounts=list(cgroup_mounts),
        caps_drop=[row[0] for row in drops],
        seccomp_deny_default=parse_bool(config.get("security.syscalls.deny_default", "true")),
        seccomp_deny=seccomp_deny_list(config.get("security.syscalls.deny", "")),
        seccomp_deny_compat=parse_bool(config.get("security.syscalls.deny_compat", "false")),
        stop_signal=stop_signal_for(init_target),
        disks=list(disks or []),
        nesting=parse_bool(config.get("security.nesting") or "false"),
        device_rules={k: list(v) for k, v in (device_rules or {}).items()},
    )
