"""Plain LXC side of the lifecycle benchmark, on a private copy of the same image rootfs.

Imports lxmgr.storage.shift and lxmgr.model.idmap (to shift the copy once). Every container
lives under a private lxcpath (`-P`) in a temp dir, is named lxmbench-<hex>, has no network
(`lxc.net.0.type = empty`) and boots a per-container `cp -a` of a shifted master copy, never
the host's /. cleanup() stops (-k) and destroys only the containers this object created and
removes their cgroup dirs (exact names) and the temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from common import (
    RunResult,
    exec_median,
    make_private_dir,
    remove_private_dir,
    rss_kib,
    timed,
    wait_booted,
)

ID_BASE = 1000000
ID_SIZE = 65536
LXC_CONFIG_DIR = Path("/usr/share/lxc/config")
STOP_TIMEOUT = 30
CONFIG = """\
lxc.include = {confdir}/debian.common.conf
lxc.include = {confdir}/userns.conf
lxc.idmap = u 0 {base} {size}
lxc.idmap = g 0 {base} {size}
lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.cgroup.dir.monitor = {name}.monitor
lxc.cgroup.dir.container = {name}.payload
lxc.log.file = {log}
lxc.log.level = WARN
"""


def lxc_version() -> str:
    proc = subprocess.run(["lxc-start", "--version"], capture_output=True, text=True)
    return proc.stdout.strip()


class LxcBench:
    """Runs lifecycle cycles with the lxc-* tools on a private lxcpath."""

    def __init__(self, image_rootfs: Path) -> None:
        self.root = make_private_dir("lxc-bench-")
        self.lxcpath = self.root / "lxcpath"
        self.lxcpath.mkdir(mode=0o711)
        (self.root / "logs").mkdir(mode=0o700)
        self.master = self.root / "master"
        self.created: list[str] = []  # not destroyed yet
        self.names_used: list[str] = []  # every name, for the cgroup sweep
        try:
            self._make_master(image_rootfs)
        except BaseException:
            remove_private_dir(self.root)
            raise

    def _make_master(self, image_rootfs: Path) -> None:
        """One shifted copy (owners +1000000), untimed; each container copies it."""
        from lxmgr.model.idmap import IdMap
        from lxmgr.storage.shift import shifted_copy

        shifted_copy(image_rootfs, self.master, IdMap(ID_BASE, ID_BASE, ID_SIZE))

    def _lxc(self, tool: str, name: str, *args: str, timeout: float = 120,
             check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [tool, "-n", name, "-P", str(self.lxcpath), *args]
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        err = subprocess.PIPE if check else subprocess.DEVNULL
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: "
                               f"{proc.stderr.strip()}; log tail: {self.log_tail(name)}")
        return proc

    def log_tail(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)"

    # -- one cycle ---------------------------------------------------------------------------

    def create(self, name: str) -> None:
        """The dir-backend create: a private copy of the rootfs plus a config file."""
        cdir = self.lxcpath / name
        cdir.mkdir(mode=0o711)  # container root must traverse it
        self.created.append(name)
        self.names_used.append(name)
        rootfs = cdir / "rootfs"
        subprocess.run(["cp", "-a", "--reflink=auto", "--", str(self.master), str(rootfs)],
                       check=True)
        (cdir / "config").write_text(CONFIG.format(
            confdir=LXC_CONFIG_DIR, base=ID_BASE, size=ID_SIZE, name=name, rootfs=rootfs,
            log=self.root / "logs" / f"{name}.log"))

    def check_rootfs(self, name: str) -> None:
        """Refuse to start anything but our private copy."""
        rootfs = Path(os.path.realpath(self.lxcpath / name / "rootfs"))
        if rootfs == Path("/") or self.root.resolve() not in rootfs.parents:
            raise RuntimeError(f"Refusing to start LXC on rootfs '{rootfs}'")
        if os.stat(rootfs).st_uid != ID_BASE or not (rootfs / "usr/lib/systemd/systemd").exists():
            raise RuntimeError(f"Rootfs '{rootfs}' is not a shifted debian copy")

    def run_cycle(self) -> RunResult:
        """create, start until booted, attach true x20, monitor RSS, stop, destroy."""
        res = RunResult()
        name = f"lxmbench-{os.urandom(4).hex()}"
        res.metrics["create"] = timed(lambda: self.create(name))
        self.check_rootfs(name)
        t0 = time.perf_counter()
        self._lxc("lxc-start", name, "-d")
        res.metrics["start_return"] = time.perf_counter() - t0
        res.metrics["start_running"], res.boot_state, res.boot_polls = wait_booted(
            lambda: self.system_state(name), t0)
        res.metrics["exec_true"] = exec_median(
            lambda: self._lxc("lxc-attach", name, "--", "true", check=False).returncode)
        res.metrics["monitor_rss"] = rss_kib(self.monitor_pid(name))
        res.metrics["stop"] = timed(lambda: self._lxc(
            "lxc-stop", name, "-t", str(STOP_TIMEOUT), timeout=STOP_TIMEOUT + 30))
        if res.metrics["stop"] >= STOP_TIMEOUT:
            res.notes.append("lxc-stop hit its timeout and killed the container")
        res.metrics["delete"] = timed(lambda: self._lxc("lxc-destroy", name))
        self.created.remove(name)
        return res

    def system_state(self, name: str) -> str:
        proc = self._lxc("lxc-attach", name, "--", "systemctl", "is-system-running",
                         check=False, capture=True, timeout=30)
        return proc.stdout.strip()

    def monitor_pid(self, name: str) -> int:
        """The `[lxc monitor]` process: the parent of the container's init."""
        init = int(self._lxc("lxc-info", name, "-p", "-H", capture=True).stdout.strip())
        with open(f"/proc/{init}/status") as f:
            ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            if b"lxc monitor" not in f.read():
                raise RuntimeError(f"Parent {ppid} of init {init} is not the LXC monitor")
        return ppid

    def is_running(self, name: str) -> bool:
        proc = self._lxc("lxc-info", name, "-s", "-H", check=False, capture=True, timeout=30)
        return proc.returncode == 0 and proc.stdout.strip() not in ("", "STOPPED")

    # -- cleanup -----------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Stop -k and destroy our containers, rmdir their cgroups, remove the temp dir."""
        warnings = []
        for name in list(self.created):
            try:
                self._lxc("lxc-stop", name, "-k", check=False, timeout=60)
                self._lxc("lxc-destroy", name, "-f", check=False, timeout=120)
                if self.is_running(name):
                    raise RuntimeError("still running")
                self.created.remove(name)
            except Exception as err:  # noqa: BLE001 - report and go on cleaning
                warnings.append(f"Failed to destroy LXC container '{name}': {err}")
        warnings += remove_cgroups(self.names_used)
        if not self.created:
            warning = remove_private_dir(self.root)
            if warning:
                warnings.append(warning)
        else:
            warnings.append(f"Left {self.root}: containers {self.created} not destroyed")
        return warnings


def remove_cgroups(names: list[str]) -> list[str]:
    """rmdir (deepest first) cgroup dirs named <name>.payload/.monitor that LXC left."""
    wanted = {f"{n}.{kind}" for n in names for kind in ("payload", "monitor")}
    warnings = []
    for top in Path("/sys/fs/cgroup").iterdir():
        for dirpath, dirnames, _ in os.walk(top):
            hits = [d for d in dirnames if d in wanted]
            dirnames[:] = [d for d in dirnames if d not in wanted and dirpath.count("/") < 8]
            for hit in hits:
                warnings += _rmdir_tree(Path(dirpath) / hit)
    return warnings


def _rmdir_tree(path: Path) -> list[str]:
    try:
        for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            sub.rmdir()
        path.rmdir()
        return [f"Removed cgroup left by LXC: {path}"]
    except OSError as err:
        return [f"Could not remove cgroup {path}: {err}"]


def ensure_lxc(install: bool) -> tuple[bool, list[str]]:
    """lxc-start and debian.common.conf present? Install lxc and lxc-templates (which ships
    debian.common.conf; no recommends, lxc-net's bridge disabled first) when allowed."""
    if shutil.which("lxc-start") and (LXC_CONFIG_DIR / "debian.common.conf").exists():
        return True, []
    if not install:
        return False, ["LXC (lxc, lxc-templates) not installed (--no-install)"]
    notes = []
    default_net = Path("/etc/default/lxc-net")
    if not default_net.exists():
        default_net.write_text('USE_LXC_BRIDGE="false"\n')
        notes.append('Wrote /etc/default/lxc-net with USE_LXC_BRIDGE="false" before install')
    bridge_before = Path("/sys/class/net/lxcbr0").exists()
    argv = ["apt-get", "install", "-y", "--no-install-recommends",
            "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
            "lxc", "lxc-templates"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(argv, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    notes.append(f"Installed lxc {lxc_version()} and lxc-templates with apt-get")
    if Path("/sys/class/net/lxcbr0").exists() and not bridge_before:
        subprocess.run(["/etc/init.d/lxc-net", "stop"], check=False)
        notes.append("The lxc install created lxcbr0; stopped it with /etc/init.d/lxc-net stop")
    return shutil.which("lxc-start") is not None, notes
