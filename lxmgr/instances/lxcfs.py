"""The host's lxcfs: which one containers use, and the one lxmgrd starts and supervises.

One lxcfs FUSE daemon serves every container (LXD runs one per host too: the snap's at
/var/snap/lxd/common/var/lib/lxcfs, Debian's lxcfs.service at /var/lib/lxcfs). $LXMGR_LXCFS:

  unset  lxmgr's own at <LXMGR_DIR>/lxcfs when it runs, else Debian's or the LXD snap's when
         one is mounted; lxmgrd starts its own when none is (ensure(), every few seconds, so
         a dead one is restarted) and stops it on exit when no instance runs (release()).
  none   no lxcfs: containers see the kernel's /proc files (the tests' default).
  PATH   the lxcfs someone else mounted at PATH (the tests' session one); never started here.

Our own runs in the foreground in its own session, outlives a daemon restart (its containers'
/proc files are its files) and is adopted again through its pid file; only a pid whose
command line names our mount point is ever signalled, and only our own mount point is ever
unmounted (the stale mount a killed lxcfs leaves, as lxcfs's upstart job cleaned up "in case
of crash"). Containers bind its files at boot (runtime.lxcfs, RuntimePlan.lxcfs): a crash
leaves the running ones' files answering ENOTCONN until they restart, as with LXD
(github.com/lxc/lxcfs/issues/193: "in case lxcfs crashes the only option is to restart the
container"). Blocking; the daemon calls it from a thread.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lxmgr import paths
from lxmgr.errors import CommandError, KernelError, LxmgrError
from lxmgr.instances.host import Check
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.children import Children, read_from, send_signal
from lxmgr.runtime import lxcfs as rt

log = logging.getLogger(__name__)

LXCFS = "/usr/bin/lxcfs"
ENV = "LXMGR_LXCFS"
DISABLED = "none"
# Where lxcfs runs when someone else started it: Debian's lxcfs.service, LXD's snap.
FOREIGN = (Path("/var/lib/lxcfs"), Path("/var/snap/lxd/common/var/lib/lxcfs"))
# -l: per-container /proc/loadavg (the LXD snap's lxcfs.loadavg=true; off there by default,
# on here so loadavg follows the container like the other files do).
OPTIONS = ("-l",)
START_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0  # for a read of one of its files
STOP_TIMEOUT = 5.0
EXIT_GRACE = 0.2  # after it unmounted itself
HUNG_STOP_TIMEOUT = 1.0  # a hung lxcfs may not act on SIGTERM: SIGKILL it sooner
MAX_STACKED = 8  # lxcfs mounts stacked at our mount point that stop() detaches at most
RETRY_INTERVAL = 30.0  # between failed starts (no /dev/fuse, ...), each failure logged once
MOUNTINFO = "/proc/self/mountinfo"
RESTART = "systemctl restart lxmgr.service"
_children = Children()  # lxcfs processes we started: reaped


def setting() -> str:
    """$LXMGR_LXCFS: "" (automatic), "none" or the mount point of an lxcfs to use."""
    return os.environ.get(ENV, "").strip()


def mounted() -> set[str]:
    """Mount points of every lxcfs mounted in our mount namespace."""
    try:
        with open(MOUNTINFO) as f:
            return set(rt.parse_mounts(f.read()))
    except OSError:
        return set()


def _real(path: Path) -> str:
    """path as mountinfo spells it, without touching the filesystem mounted there (a hung
    FUSE server would block any lookup that reaches it)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def _answers(path: Path, mounts: set[str]) -> bool:
    return _real(path) in mounts and _probe(f"{path}{rt.PROC}/meminfo") is None


_stuck: dict[str, threading.Thread] = {}  # probes of a hung lxcfs that never returned


def _probe(path: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """rt.unusable() with a deadline: a hung lxcfs (stopped, deadlocked) blocks a read of its
    files until it dies, and the daemon's loop must go on. The blocked thread is left
    behind (nothing can interrupt it); while it is, the path counts as not answering."""
    if path in _stuck:
        if _stuck[path].is_alive():
            return f"{path}: no answer"
        del _stuck[path]
    result: list[str | None] = []
    probe = threading.Thread(target=lambda: result.append(rt.unusable(path)),
                             name="lxcfs-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    if probe.is_alive():
        _stuck[path] = probe
        return f"{path}: no answer within {timeout:g}s"
    return result[0]


def find() -> Path | None:
    """The lxcfs containers get now: the first of ours (or $LXMGR_LXCFS's), Debian's and
    the LXD snap's that is mounted and answers; None when none does or lxcfs is off."""
    value = setting()
    if value == DISABLED:
        return None
    candidates = [Path(value)] if value else [own().mount, *FOREIGN]
    mounts = mounted()
    return next((p for p in candidates if _answers(p, mounts)), None)


def plan_binds(instance: str) -> list[list[str]]:
    """RuntimePlan.lxcfs for an instance starting now: the binds of find()'s lxcfs, or none
    (logged: the container then sees the host's memory, CPUs and uptime)."""
    if setting() == DISABLED:
        return []
    found = find()
    if found is None:
        log.warning("Instance '%s' starts without lxcfs: none answers (lxmgr doctor)",
                    instance)
        return []
    try:
        return rt.scan(str(found))
    except OSError as err:
        log.warning("Instance '%s' starts without lxcfs: %s: %s", instance, found,
                    err.strerror or err)
        return []


@dataclass
class Lxcfs:
    """One lxcfs process we start, known by its mount point (it survives our restarts)."""

    mount: Path
    pid_file: Path
    log_file: Path
    binary: str = LXCFS

    def argv(self) -> list[str]:
        """Foreground (we supervise it), our pid file (the default /run/lxcfs.pid is locked
        by Debian's), -l."""
        return [self.binary, "-f", *OPTIONS, "-p", str(self.pid_file), str(self.mount)]

    def pid(self) -> int | None:
        """Our lxcfs's pid if it is running, else None."""
        _children.reap()
        try:
            pid = int(self.pid_file.read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(self.mount).encode() in argv else None

    def is_mounted(self) -> bool:
        return _real(self.mount) in mounted()

    def answers(self) -> bool:
        return _answers(self.mount, mounted())

    def start(self) -> int:
        """Start lxcfs (after stopping a hung one of ours and detaching the stale mount a
        dead one left); wait until its files answer. CommandError with its log's last line
        when it exits first (no /dev/fuse, no FUSE in the kernel, ...)."""
        self.stop()
        self.mount.mkdir(mode=0o755, parents=True, exist_ok=True)
        # Containers' init (root of their user namespace) binds from here: it must be able
        # to reach the files through every directory above (0711 is enough).
        os.chmod(self.mount, 0o755)
        self.pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = self.argv()
        log.debug("start: %s", " ".join(argv))
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, close_fds=True, cwd="/")
            except OSError as err:
                raise CommandError(argv, 127, f"{self.binary}: {err.strerror}") from err
        _children.add(proc)
        self.pid_file.write_text(f"{proc.pid}\n")  # lxcfs writes the same once it runs
        self._wait_started(proc, argv, offset)
        _protect(proc.pid)
        return proc.pid

    def _wait_started(self, proc: subprocess.Popen[bytes], argv: list[str],
                      offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                _children.forget(proc.pid)
                raise CommandError(argv, code, self._log_since(offset) or "lxcfs exited")
            if self.answers():
                return
            time.sleep(0.01)
        self.stop()
        raise CommandError(argv, -1, f"lxcfs did not answer within {START_TIMEOUT:g}s")

    def _log_since(self, offset: int) -> str:
        return read_from(self.log_file, offset)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM our lxcfs: it unmounts itself, then waits for its load-average thread's
        next round (up to 5 s) before it exits, so once the mount is gone the rest is
        SIGKILLed; SIGKILL too after timeout. Then detach what is left mounted at our mount
        point (a killed lxcfs's stale mount)."""
        pid = self.pid()
        if pid is not None:
            log.debug("stop lxcfs %d (%s)", pid, self.mount)
            send_signal(pid, signal.SIGTERM)
            send_signal(pid, signal.SIGCONT)  # a stopped one handles its SIGTERM at once
            deadline = time.monotonic() + timeout
            while self.is_mounted() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not _children.wait_gone(pid, EXIT_GRACE):
                send_signal(pid, signal.SIGKILL)
                _children.wait_gone(pid, timeout)
        for _ in range(MAX_STACKED):
            if not self.is_mounted():
                break
            try:
                libc.umount2(str(self.mount), c.MNT_DETACH)
            except OSError as err:
                raise KernelError(f"Failed to unmount the stale lxcfs at {self.mount}: "
                                  f"{err.strerror}") from err
        self.pid_file.unlink(missing_ok=True)


def own() -> Lxcfs:
    """The lxcfs lxmgrd starts, under its state directory (never Debian's /var/lib/lxcfs,
    which lxcfs.service would then fail to mount)."""
    return Lxcfs(paths.root() / "lxcfs", paths.run_dir() / "lxcfs.pid",
                 paths.logs_dir() / "lxcfs.log", LXCFS)


def _protect(pid: int) -> None:
    """OOM-kill it last: every container's /proc files die with it (Debian's lxcfs.service
    has OOMScoreAdjust=-1000)."""
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text("-1000\n")
    except OSError as err:
        log.warning("Could not protect lxcfs %d from the OOM killer: %s", pid, err.strerror)


class Supervisor:
    """The daemon's duty (lifecycle.run): keep an lxcfs answering; failures are retried every
    RETRY_INTERVAL and each distinct one is reported once."""

    def __init__(self) -> None:
        self._retry_at = 0.0
        self._last_error = ""

    def ensure(self) -> tuple[int, str] | None:
        """Start ours when no lxcfs answers, restart it when it died; returns what to log,
        as (level, message), or None when nothing happened."""
        if setting() or find() is not None or time.monotonic() < self._retry_at:
            return None
        lxcfs = own()
        if not os.access(lxcfs.binary, os.X_OK):
            return self._failed(f"{lxcfs.binary} is not installed (apt-get install lxcfs)")
        hung = lxcfs.pid() is not None  # alive but not answering
        died = hung or lxcfs.is_mounted()
        try:
            if hung:
                lxcfs.stop(timeout=HUNG_STOP_TIMEOUT)
            pid = lxcfs.start()
        except LxmgrError as err:
            return self._failed(str(err))
        self._last_error = ""
        if died:
            what = "stopped answering" if hung else "had died"
            return logging.WARNING, (f"lxcfs {what} and was restarted (pid {pid}, "
                                     f"{lxcfs.mount}): the containers that ran meanwhile see "
                                     "ENOTCONN in its files until they restart")
        return logging.INFO, f"lxcfs started (pid {pid}, {lxcfs.mount})"

    def _failed(self, error: str) -> tuple[int, str] | None:
        self._retry_at = time.monotonic() + RETRY_INTERVAL
        if error == self._last_error:
            return None
        self._last_error = error
        return logging.WARNING, ("lxcfs could not be started, containers see the host's /proc "
                                 f"files: {error}")


def release(instances_running: bool) -> None:
    """At the daemon's exit: stop our lxcfs unless an instance runs (their /proc files are
    its files; the next daemon adopts it). Never another's."""
    if setting() or instances_running:
        return
    lxcfs = own()
    if lxcfs.pid() is not None or lxcfs.is_mounted():
        lxcfs.stop()
        log.info("lxcfs stopped (no instance runs)")


def check() -> Check:
    """`lxmgr doctor`: whether an lxcfs serves the containers, which and where."""
    value = setting()
    if value == DISABLED:
        return Check("lxcfs", True, f"not used ({ENV}=none): containers see the host's /proc "
                     "files")
    found = find()
    ours = own()
    if found is not None and found == ours.mount:
        return Check("lxcfs", True, f"running, pid {ours.pid() or '?'}, mounted at {found} "
                     "(started by lxmgr)")
    if found is not None:
        who = f"{ENV}" if value else "not started by lxmgr"
        return Check("lxcfs", True, f"mounted at {found} ({who})")
    fix = (f"apt-get install lxcfs && {RESTART}" if not os.access(LXCFS, os.X_OK) else
           f"{RESTART}  # lxmgrd starts lxcfs; log: {ours.log_file}")
    if value:
        return Check("lxcfs", False, f"no lxcfs answers at {value} ({ENV})",
                     f"start lxcfs at {value} or unset {ENV}", fatal=False)
    pid = ours.pid()
    where = (f"pid {pid} does not answer at {ours.mount}" if pid is not None else
             f"stale mount at {ours.mount} (it died)" if ours.is_mounted() else "not running")
    return Check("lxcfs", False, f"{where}: containers see the host's memory, CPUs and uptime",
                 fix, fatal=False)
