"""LXD side of the API benchmark: a private `lxd` daemon and the `lxc` client (Debian's 5.0.2).

ensure_lxd() installs the Debian packages when allowed. LxdSide starts `lxd` itself (PID 1 is
not systemd here) with LXD_DIR in a private dir under /var/tmp, in a new network namespace
(`unshare --net`, only a down lo) and with HTTP(S)_PROXY pointing at 127.0.0.1:9, so LXD's
start-up fetch of instance types from images.linuxcontainers.org cannot leave the host. The
preseed has a `dir` pool, no network and a default profile with only a root disk. The image is
a unified tarball: metadata.yaml + the cached debian rootfs, imported as `lxmbench-debian`.
The client gets the same LXD_DIR and a private LXD_CONF. Networks created through cli() live
in that namespace, never on the host; for them, LxdSide(private_sysfs=True) also gives lxd a
private mount namespace with a sysfs of its own network namespace on /sys (the host's cgroup
mounts bound back on /sys/fs/cgroup): LXD looks bridges up in /sys/class/net, which otherwise
lists the host's links, and lo is brought up there (a fresh namespace has no IPv4 routing
table, and LXD's bridge set-up flushes routes). cleanup() force-deletes every container this object
launched, then its profiles and networks, runs `lxd shutdown` (then SIGTERM/SIGKILL by pid),
kills by pid whatever still runs in the private network namespace (a dnsmasq), unmounts what
LXD left mounted under its dir, removes the dir and reports leftovers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from common import make_private_dir, mounts_under, remove_private_dir, run_checked

IMAGE_ALIAS = "lxmbench-debian"
NO_PROXY_URL = "http://127.0.0.1:9"  # discard port: nothing listens, nothing leaves
START_TIMEOUT = 60
STOP_TIMEOUT = 60
PRESEED = """\
config: {}
networks: []
storage_pools:
- name: default
  driver: dir
  config: {}
profiles:
- name: default
  description: lxmgr bench (root disk only, no network)
  devices:
    root:
      path: /
      pool: default
      type: disk
"""
METADATA = """\
architecture: x86_64
creation_date: {created}
properties:
  os: debian
  release: bookworm
  description: lxmgr bench debian (same rootfs as lxmgr's cached image)
"""


def _bridges() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir() if (p / "bridge").exists()}


def _lxd_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("lxd", "lxcfs"):
                    pids.add(int(entry))
            except OSError:
                continue
    return pids


def ensure_lxd(install: bool) -> tuple[str | None, list[str]]:
    """(None, notes) when lxd and lxc are usable, else (reason, notes). Installs the Debian
    packages lxd and lxd-client with apt-get when missing and allowed."""
    notes: list[str] = []
    if _have_lxd():
        return None, notes
    if not install:
        return "not installed (--no-install)", notes
    bridges, pids = _bridges(), _lxd_pids()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "-o", "Dpkg::Options::=--force-confdef",
            "-o", "Dpkg::Options::=--force-confold", "lxd", "lxd-client"]
    if subprocess.run(argv, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
        if subprocess.run(argv, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            return "apt-get install lxd lxd-client failed", notes
    notes.append("Installed lxd and lxd-client with apt-get")
    new_bridges, new_pids = _bridges() - bridges, _lxd_pids() - pids
    if new_bridges:
        notes.append(f"Installing lxd created bridges {sorted(new_bridges)} (left as they are)")
    if new_pids:
        notes.append(f"Installing lxd started processes {sorted(new_pids)} (left running)")
    return (None if _have_lxd() else "lxd/lxc still missing after install"), notes


def lxd_column(no_lxd: bool, no_install: bool, notes: list[str],
               measure: Callable[[], object]) -> object:
    """'skipped (--no-lxd)', why LXD cannot run (installing it first when allowed), or
    measure()'s report."""
    if no_lxd:
        return "skipped (--no-lxd)"
    reason, install_notes = ensure_lxd(not no_install)
    notes += install_notes
    return reason or measure()


def _have_lxd() -> bool:
    import shutil

    if not (shutil.which("lxd") and shutil.which("lxc")):
        return False
    proc = subprocess.run(["lxc", "--version"], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout[:1].isdigit()


class LxdSide:
    """A private LXD daemon plus argv builders for `lxc`; see the module docstring."""

    label = "LXD"
    image = IMAGE_ALIAS
    cli_argv = ["lxc"]

    def __init__(self, prefix: str = "lxd-bench-api-", private_sysfs: bool = False) -> None:
        self.dir = make_private_dir(prefix)
        self.private_sysfs = private_sysfs
        self.lxd_dir = self.dir / "lxd"
        self.lxd_dir.mkdir(mode=0o711)
        (self.dir / "conf").mkdir(mode=0o700)
        self.socket_path = str(self.lxd_dir / "unix.socket")
        self.env = {**os.environ, "LXD_DIR": str(self.lxd_dir),
                    "LXD_CONF": str(self.dir / "conf")}
        self.proc: subprocess.Popen[bytes] | None = None
        self.created: list[str] = []  # launched and not deleted yet
        self.names_used: list[str] = []  # every name, for the cgroup sweep
        self.profiles: list[str] = []  # created and not deleted yet
        self.networks: list[str] = []
        self.bridges_before = _bridges()

    # -- argv --------------------------------------------------------------------------------

    def version_argv(self) -> list[str]:
        return ["lxc", "--version"]

    def list_argv(self) -> list[str]:
        return ["lxc", "list"]

    def exec_argv(self, name: str, command: list[str]) -> list[str]:
        return ["lxc", "exec", name, "--", *command]

    def launch_argv(self, name: str) -> list[str]:
        return ["lxc", "launch", self.image, name]

    def version(self) -> str:
        proc = subprocess.run(["lxd", "--version"], capture_output=True, text=True)
        return proc.stdout.strip()

    # -- daemon ------------------------------------------------------------------------------

    def _run(self, argv: list[str], *, input: str | None = None, timeout: float = 120,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_checked(argv, self.env, input=input, timeout=timeout, check=check)

    def cli(self, *args: str, timeout: float = 180,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """`lxc ARGS...` with captured output; raises when it fails (check)."""
        return self._run(["lxc", *args], timeout=timeout, check=check)

    def netns_argv(self) -> list[str]:
        """Prefix running a command in lxd's private network namespace."""
        assert self.proc is not None
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--"]

    def start(self, image_dir: Path) -> None:
        """Start lxd, preseed it and import the image."""
        daemon_env = {**self.env, "HTTPS_PROXY": NO_PROXY_URL, "HTTP_PROXY": NO_PROXY_URL,
                      "https_proxy": NO_PROXY_URL, "http_proxy": NO_PROXY_URL}
        daemon_env.pop("NO_PROXY", None)
        daemon_env.pop("no_proxy", None)
        log = open(self.dir / "lxd.out", "ab")  # noqa: SIM115 - the child keeps it
        lxd = ["lxd", "--group", "root", "--logfile", str(self.dir / "lxd.log")]
        argv = ["unshare", "--net", "--", *lxd]
        if self.private_sysfs:
            save = self.dir / "hostcg"
            save.mkdir()
            script = ("set -e; ip link set lo up; mount --rbind /sys/fs/cgroup \"$1\"; "
                      "mount -t sysfs sysfs /sys; mount --rbind \"$1\" /sys/fs/cgroup; "
                      "umount -l \"$1\"; shift; exec \"$@\"")
            argv = ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c",
                    script, "sh", str(save), *lxd]
        try:
            # unshare (and sh) exec lxd: the pid we hold is the daemon's
            self.proc = subprocess.Popen(argv, env=daemon_env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        ready = self._run(["lxd", "waitready", f"--timeout={START_TIMEOUT}"],
                          timeout=START_TIMEOUT + 10, check=False)
        if ready.returncode != 0 or self.proc.poll() is not None:
            tail = _tail(self.dir / "lxd.out") or _tail(self.dir / "lxd.log")
            raise RuntimeError(f"lxd did not start: {ready.stderr.strip()} {tail}".strip())
        self._run(["lxd", "init", "--preseed"], input=PRESEED)
        self._import_image(image_dir)

    def _import_image(self, image_dir: Path) -> None:
        """A unified image tarball (uncompressed) of metadata.yaml and the cached rootfs."""
        meta = self.dir / "meta"
        meta.mkdir()
        (meta / "metadata.yaml").write_text(METADATA.format(created=int(time.time())))
        tarball = self.dir / "image.tar"
        subprocess.run(["tar", "-cf", str(tarball), "-C", str(meta), "metadata.yaml",
                        "-C", str(image_dir), "rootfs"], check=True)
        try:
            self._run(["lxc", "image", "import", str(tarball), f"--alias={IMAGE_ALIAS}"],
                      timeout=300)
        finally:
            tarball.unlink()

    # -- cleanup -----------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        warnings: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            for name in list(self.created):
                try:
                    self._run(["lxc", "delete", "--force", name], timeout=180)
                    self.created.remove(name)
                except Exception as err:  # noqa: BLE001 - report and go on cleaning
                    if "not found" in str(err).lower():
                        self.created.remove(name)
                    else:
                        warnings.append(f"Failed to delete LXD container '{name}': {err}")
            for kind, names in (("profile", self.profiles), ("network", self.networks)):
                for name in list(names):
                    gone = self._run(["lxc", kind, "delete", name], check=False)
                    if gone.returncode == 0 or "not found" in gone.stderr.lower():
                        names.remove(name)
                    else:
                        warnings.append(f"Failed to delete LXD {kind} '{name}': "
                                        f"{gone.stderr.strip()}")
        elif self.created:
            warnings.append(f"lxd was not running at cleanup; containers {self.created} "
                            "could not be deleted")
        # Only while lxd runs (not reaped: the pid is still ours), and never the host's.
        netns = _netns_of(self.proc.pid) \
            if self.proc is not None and self.proc.poll() is None else None
        if netns is not None and netns == _netns_of(os.getpid()):
            netns = None
        warnings += self._stop_daemon()
        if netns is not None:
            warnings += _kill_in_netns(netns)
        for name in self.names_used:
            for cg in (f"lxc.payload.{name}", f"lxc.monitor.{name}"):
                root = Path("/sys/fs/cgroup")
                for path in [root / cg, *root.glob(f"*/{cg}")]:  # unified, then v1
                    if not path.exists():
                        continue
                    try:
                        path.rmdir()
                    except OSError as err:
                        warnings.append(f"cgroup {path} left: {err}")
        warnings += self._unmount_leftovers()
        new_bridges = _bridges() - self.bridges_before
        if new_bridges:
            warnings.append(f"bridges appeared while LXD ran: {sorted(new_bridges)}")
        if self.created:
            warnings.append(f"Left {self.dir} for inspection: containers {self.created} remain")
        else:
            try:
                warning = remove_private_dir(self.dir)
            except OSError as err:
                warning = f"Failed to remove {self.dir}: {err}"
            if warning:
                warnings.append(warning)
        return warnings

    def track(self, name: str) -> None:
        """Remember a container name before launching it (for delete and cgroup sweep)."""
        self.names_used.append(name)
        self.created.append(name)

    def _stop_daemon(self) -> list[str]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        warnings = []
        self._run(["lxd", "shutdown", f"--timeout={STOP_TIMEOUT}"], timeout=STOP_TIMEOUT + 10,
                  check=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            warnings.append(f"lxd (pid {self.proc.pid}) still up after `lxd shutdown`; SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                warnings.append(f"lxd (pid {self.proc.pid}) ignored SIGTERM; sent SIGKILL")
                self.proc.kill()
                self.proc.wait()
        return warnings

    def _unmount_leftovers(self) -> list[str]:
        """LXD leaves its shmounts/devlxd tmpfs mounted under LXD_DIR: unmount ours."""
        warnings = []
        for point in sorted(mounts_under(self.dir), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0 and \
                    subprocess.run(["umount", "-l", point], capture_output=True).returncode:
                warnings.append(f"Could not unmount {point}")
        return warnings


def _netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _kill_in_netns(netns: str) -> list[str]:
    """SIGKILL, by pid, each process still in the private namespace lxd was started in (it
    is ours: nothing else ever entered it); a warning per pid."""
    warnings = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _netns_of(int(entry)) == netns:
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                os.kill(int(entry), signal.SIGKILL)
                warnings.append(f"killed {comm} (pid {entry}) left in lxd's network namespace")
            except OSError:
                continue
    return warnings


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
