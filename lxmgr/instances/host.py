"""Host readiness: what the runtime needs from the kernel and the host, with the fix for
each problem (point 12 of the runtime issue), and the fixes LXD's packaging applies; and
the kernel modules an instance asks for (linux.kernel_modules), loaded before it starts."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

from lxmgr import paths
from lxmgr.cgroups.base import read_file
from lxmgr.cgroups.detect import detect
from lxmgr.errors import CommandError, HostNotReady, KernelError
from lxmgr.linux import commands
from lxmgr.model.validate import parse_kernel_modules
from lxmgr.runtime import idmap as idmaps
from lxmgr.storage.mount import supports_idmapped_overlay

log = logging.getLogger(__name__)

SYS_MODULE = "/sys/module"  # one directory per loaded (or built-in, with parameters) module
MODPROBE_TIMEOUT = 60.0
KEYS_LIMITS = {"maxkeys": 2000, "maxbytes": 2_000_000}  # LXD's production settings
INOTIFY_INSTANCES = 1024  # LXD's packaging value; the default 128 stops ~18 containers


@dataclass(frozen=True)
class Check:
    """One readiness check: ok, what was found, and how to fix it when not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True


def _read(path: str) -> str:
    try:
        return read_file(path) or ""
    except KernelError:
        return ""


def check_host(fix: bool = False) -> list[Check]:
    """Run every check; with fix=True apply the safe fixes (subuid ranges, inotify limit)."""
    checks = []
    userns = _read("/proc/sys/user/max_user_namespaces")
    checks.append(Check("user namespaces", userns not in ("", "0"),
                        f"user.max_user_namespaces={userns or 'missing'}",
                        "sysctl -w user.max_user_namespaces=15000"))
    overlay = "overlay" in _read("/proc/filesystems")
    checks.append(Check("overlayfs", overlay, "overlay in /proc/filesystems" if overlay else
                        "overlay filesystem missing", "modprobe overlay", fatal=False))
    idmapped = overlay and supports_idmapped_overlay()
    checks.append(Check("idmapped mounts", idmapped,
                        "overlay over an idmapped lower works" if idmapped else
                        "not supported: shifted image copies are used instead",
                        "use a kernel >= 5.19", fatal=False))
    try:
        layout = detect()
        checks.append(Check("cgroups", True, f"{layout.mode} layout, driver {layout.driver_name}"))
    except Exception as err:  # noqa: BLE001 - report whatever detection says
        checks.append(Check("cgroups", False, str(err), "mount cgroup2 on /sys/fs/cgroup"))
    checks.append(_check_subids(fix))
    checks.append(_check_inotify(fix))
    checks.append(_check_keys(fix))
    checks.append(_check_state_dir(fix))
    return checks


def _check_subids(fix: bool) -> Check:
    found = []
    for kind in ("subuid", "subgid"):
        text = _read(f"/etc/{kind}")
        found.append([r for r in idmaps.parse_subid(text) if r.count >= idmaps.SIZE])
    if all(found):
        return Check("subordinate ids", True,
                     f"root has uids from {found[0][0].start}, gids from {found[1][0].start}")
    if fix:
        uid, gid = idmaps.ensure_subids()
        return Check("subordinate ids", True, f"added root:{uid.start}:{uid.count}")
    return Check("subordinate ids", False, "root has no 65536-id range in /etc/subuid|subgid",
                 "echo root:1000000:1000000000 | tee -a /etc/subuid /etc/subgid")


def _check_inotify(fix: bool) -> Check:
    path = "/proc/sys/fs/inotify/max_user_instances"
    value = int(_read(path) or 0)
    if value < INOTIFY_INSTANCES and fix:
        with open(path, "w") as f:
            f.write(str(INOTIFY_INSTANCES))
        return Check("inotify instances", True, f"raised from {value} to {INOTIFY_INSTANCES}")
    return Check("inotify instances", value >= INOTIFY_INSTANCES,
                 f"fs.inotify.max_user_instances={value}",
                 f"sysctl -w fs.inotify.max_user_instances={INOTIFY_INSTANCES} (each systemd "
                 "PID 1 takes several; 128 stops about 18 containers)", fatal=False)


def _check_keys(fix: bool, root: str = "/proc/sys/kernel/keys") -> Check:
    """kernel.keys.maxkeys/maxbytes: the key quota of one host uid. Every container of the
    shared id range is charged to the same host root uid, and systemd gives each unit a
    session keyring: at the default 200 about 50 running containers exhaust it and units fail
    with "Failed at step KEYRING ... Required key not available" (the instance boots
    degraded). LXD's production settings raise it; we raise, never lower."""
    values = {name: int(_read(f"{root}/{name}") or 0) for name in KEYS_LIMITS}
    low = {name: want for name, want in KEYS_LIMITS.items() if values[name] < want}
    if low and fix:
        for name, want in low.items():
            with open(f"{root}/{name}", "w") as f:
                f.write(str(want))
        return Check("key quota", True, "raised " + ", ".join(
            f"kernel.keys.{name} from {values[name]} to {want}" for name, want in low.items()))
    return Check("key quota", not low, ", ".join(
                     f"kernel.keys.{name}={value}" for name, value in values.items()),
                 "sysctl -w " + " ".join(f"kernel.keys.{name}={want}"
                                          for name, want in KEYS_LIMITS.items())
                 + " (systemd takes keys in every container, charged to one host uid)",
                 fatal=False)


def _check_state_dir(fix: bool) -> Check:
    """Unprivileged containers' root (a high host uid) must traverse every directory down to
    their rootfs under $LXMGR_DIR, or the kernel refuses the rootfs bind with EACCES. Our own
    state dir gets LXD's 0711 (search only); a parent is the admin's: we name it."""
    state = os.path.realpath(paths.root())
    if not os.path.isdir(state):
        return Check("state directory", True, f"{state} (made when first used)")
    if fix and not os.stat(state).st_mode & 0o001:
        os.chmod(state, os.stat(state).st_mode | 0o711)
    current = state
    while True:
        if not os.stat(current).st_mode & 0o001:
            return Check("state directory", False,
                         f"{current} is not searchable by others (mode "
                         f"{oct(os.stat(current).st_mode & 0o7777)}): unprivileged containers "
                         f"cannot reach their rootfs under {state}", f"chmod o+x {current}")
        if current == "/":
            return Check("state directory", True, f"{state} is reachable by containers")
        current = os.path.dirname(current)


def ensure_host_ready() -> list[Check]:
    """Apply the safe fixes, raise HostNotReady naming the first fatal problem."""
    checks = check_host(fix=True)
    for check in checks:
        if not check.ok and check.fatal:
            raise HostNotReady(f"Host not ready: {check.name}: {check.detail} (fix: {check.fix})")
    return checks



def load_kernel_modules(value: str) -> None:
    """linux.kernel_modules: load each comma-separated module on the host, in order, before
    the instance starts; HostNotReady names the first that cannot be loaded (LXD: "Failed to
    load kernel module '%s'", lxd/instance/drivers/driver_lxc.go startCommon)."""
    for name in parse_kernel_modules(value):
        load_kernel_module(name)


def load_kernel_module(name: str) -> None:
    """One module, as LXD's util.LoadModule (lxd/util/kernel.go): nothing to do when
    /sys/module/NAME exists, else `modprobe -b NAME`.

    modprobe, not init_module(2)/finit_module(2) ourselves: kmod owns that job. It resolves
    the name through modules.alias and modules.dep of the running kernel, loads dependencies
    first, decompresses .ko.xz/.zst, honours built-in modules and the options, install rules
    and blacklists of /etc/modprobe.d (-b: a blacklisted module stays out, as the host's
    admin decided)."""
    if os.path.isdir(os.path.join(SYS_MODULE, name.replace("-", "_"))):
        return
    argv = [_modprobe(), "-b", "--", name]
    try:
        commands.run(argv, timeout=MODPROBE_TIMEOUT)
    except CommandError as err:
        lines = err.stderr.strip().splitlines()
        log.error("%s failed: %s", " ".join(argv), err.stderr.strip())
        if err.returncode == 127:  # commands.run: not found
            reason = "modprobe is not installed (Debian package kmod)"
        else:
            reason = lines[-1] if lines else f"modprobe exited with status {err.returncode}"
        raise HostNotReady(f"Failed to load kernel module '{name}': {reason}") from err
    log.info("Loaded kernel module %s", name)


def _modprobe() -> str:
    """modprobe from PATH, else from the sbin directories a daemon's PATH may lack."""
    return shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin") \
        or "modprobe"
