#!/usr/bin/env python3
"""Dev box benchmark: `lxmgr dev up` to a first ssh, disk hot-plug, and file I/O through a
shift=true disk next to the host, lxmgrd + `lxmgr` beside a private LXD 5.0.2 + `lxc`.

Run as root from the repository root:

    python3 bench/devbox.py                 # table (progress on stderr)
    python3 bench/devbox.py --json          # machine-readable (ms, MiB/s) with every sample
    python3 bench/devbox.py --no-lxd        # lxmgr only (--no-install: never apt-get lxd)
    python3 bench/devbox.py --runs 2 --io-mib 64 --files 500   # quick

lxmgr (a private daemon, bench/api_lxmgr.py, whose image store links the cached debian and
debian-dev images): a test bridge without NAT carries the default profile's eth0; a host
user made for the run (useradd, home under a private /var/tmp dir, an ed25519 key) gets
`--runs` fresh boxes, each timed from `lxmgr dev up NAME` (run as root with SUDO_USER) until
it returns and until `ssh NAME.lxmgr true` as that user first succeeds. dev up and ssh run in
a private mount namespace whose /etc/hosts is a copy, kept current, of the daemon's hosts file
(LXMGR_HOSTS_FILE): the machine's /etc/hosts is never written. Then, on a running debian
container of each side (LXD: bench/api_lxd.py's private daemon): `--runs` hot-plugs and
removals of a disk device (CLI wall time, then the same GET + PUT in-process), and `--runs`
rounds of dd and a perl small-files loop through a shift=true disk and on the host in the
same directory. LXD has no one-command
dev box: the table gives the number of `lxc` commands its documentation needs instead.
Everything made (user, dirs, containers, bridge, daemons) is removed in `finally`.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from api_lxd import LxdSide, lxd_column  # noqa: E402
from api_lxmgr import LxmgrSide  # noqa: E402
from common import (  # noqa: E402
    BOOTED,
    align,
    cleanup_side,
    format_cell,
    make_private_dir,
    print_report,
    remove_private_dir,
    root_and_signals,
    run_checked,
    side_summary,
    summarize,
    wall,
)

SSH_TIMEOUT = 60.0  # seconds after dev up returned for the first ssh to succeed
SSH_RETRY = 0.05
BOOT_TIMEOUT = 120.0
MIRROR_INTERVAL = 0.02  # seconds between two looks at the daemon's hosts file
TARGET_DEVUP_MS = 10000.0
TARGET_HOTPLUG_MS = 100.0
TARGET_IO_RATIO = 0.10
# LXD 5.0.2's documented way to the same box, one `lxc` command per step (README section).
LXD_DEVBOX_STEPS = [
    ("launch", "lxc launch images:debian/12 NAME"),
    ("home, shifted", "lxc config device add NAME home disk source=$HOME path=$HOME shift=true"),
    ("user, same uid/gid", "lxc exec NAME -- sh -c 'groupadd -g GID G && useradd -u UID -g GID "
                           "-M -d $HOME -s $SHELL USER'"),
    ("sudo + sshd packages", "lxc exec NAME -- sh -c 'apt-get update && apt-get install -y "
                             "sudo openssh-server'"),
    ("sudo rule", "lxc exec NAME -- sh -c 'echo \"USER ALL=(ALL) NOPASSWD:ALL\" > "
                  "/etc/sudoers.d/USER'"),
    ("ssh key", "lxc file push --uid UID --gid GID --mode 0600 -p ~/.ssh/id_ed25519.pub "
                "NAME$HOME/.ssh/authorized_keys"),
    ("autostart", "lxc config set NAME boot.autostart true"),
    ("name from the host", "lxc network get lxdbr0 ipv4.address  (+ resolvectl dns, resolvectl "
                           "domain)"),
]
ROWS: dict[str, tuple[str, str]] = {
    "devup_return": ("dev up NAME (CLI returns)", "ms"),
    "devup_ssh": ("dev up -> first ssh NAME.lxmgr true", "ms"),
    "ssh_warm": ("ssh NAME.lxmgr true, box up", "ms"),
    "cli_floor": ("CLI floor: --version", "ms"),
    "cli_get": ("CLI one GET: config device show NAME", "ms"),
    "hotplug_add": ("config device add (disk, running)", "ms"),
    "hotplug_remove": ("config device remove (disk, running)", "ms"),
    "hotplug_add_api": ("  add, API in-process (GET + PUT)", "ms"),
    "hotplug_remove_api": ("  remove, API in-process (GET + PUT)", "ms"),
    "write": ("write N MiB, dd conv=fsync: container", "MiB/s"),
    "write_host": ("  same, host, same dir", "MiB/s"),
    "read": ("read N MiB, dd iflag=direct: container", "MiB/s"),
    "read_host": ("  same, host, same dir", "MiB/s"),
    "create": ("create F small files: container", "ms"),
    "create_host": ("  same, host, same dir", "ms"),
    "stat": ("stat F small files: container", "ms"),
    "stat_host": ("  same, host, same dir", "ms"),
    "remove": ("remove F small files: container", "ms"),
    "remove_host": ("  same, host, same dir", "ms"),
    "syscall": ("getppid() x F calls (syscall floor): container", "ms"),
    "syscall_host": ("  same, host", "ms"),
}
DEVUP_KEYS = ("devup_return", "devup_ssh", "ssh_warm")
IO_KEYS = ("write", "read", "create", "stat", "remove", "syscall")
HIGHER_IS_BETTER = ("write", "read")

DD_SCRIPT = r"""set -e
export LC_ALL=C
cd "$1"
case "$2" in
write) dd if=/dev/zero of=bench.dat bs=1M count="$3" conv=fsync 2>&1 ;;
read) dd if=bench.dat of=/dev/null bs=1M iflag=direct 2>&1 ;;
clean) rm -f bench.dat ;;
esac
"""
# One perl per round (its start-up is outside the timed loops); the clock is clock_gettime
# (x86_64 syscall 228, CLOCK_MONOTONIC) because the debian image's perl-base has no
# Time::HiRes. Works in DIR/files.d, made once for both sides (a new directory per round
# lands in another block group, and ext4's inode allocation cost varies with it). Prints
# the nanoseconds of the create, stat and remove loops, and of as many getppid() calls: a
# syscall that touches no file, the floor every syscall of the loops above pays.
FILES_PERL = r"""
my ($dir, $n) = @ARGV;
sub now { my $t = "\0" x 16; syscall(228, 1, $t) == 0 or die "clock_gettime: $!\n";
          my ($s, $ns) = unpack("q2", $t); return $s * 1000000000 + $ns }
chdir("$dir/files.d") or die "chdir: $!\n";
my @t = (now());
for (1..$n) { open(my $f, ">", "f$_") or die "create f$_: $!\n"; close($f) } push @t, now();
for (1..$n) { stat("f$_") or die "stat f$_: $!\n" } push @t, now();
for (1..$n) { unlink("f$_") or die "unlink f$_: $!\n" } push @t, now();
for (1..$n) { getppid() } push @t, now();
print join(" ", map { $t[$_] - $t[$_ - 1] } 1..4), "\n";
"""


def log(label: str, message: str) -> None:
    print(f"[{label}] {message}", file=sys.stderr, flush=True)


# -- the host user ---------------------------------------------------------------------------

class HostUser:
    """A user made for the run: useradd -U, home under a private dir, an ed25519 key."""

    def __init__(self, base: Path) -> None:
        self.name = f"lxmbd{os.urandom(3).hex()}"
        self.base = base
        self.home = base / self.name
        self.key = self.home / ".ssh" / "id_ed25519"
        self.uid = self.gid = -1
        self.made = False

    def create(self) -> None:
        self.home.mkdir(mode=0o755)
        for uid in range(24000, 25000):
            taken = {p.pw_uid for p in pwd.getpwall()}
            if uid in taken:
                continue
            proc = subprocess.run(["useradd", "-u", str(uid), "-U", "-M", "-d", str(self.home),
                                   "-s", "/bin/bash", self.name], capture_output=True, text=True)
            if proc.returncode == 0:
                break
            if proc.returncode != 4:  # 4: uid taken meanwhile, try the next
                raise RuntimeError(f"useradd {self.name} failed: {proc.stderr.strip()}")
        else:
            raise RuntimeError("No free uid in 24000-24999 for the benchmark user")
        self.made = True
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        (self.home / ".ssh").mkdir(mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lxmgr-bench",
                        "-f", str(self.key)], check=True, stdin=subprocess.DEVNULL)
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def remove(self) -> list[str]:
        warnings = []
        if self.made:
            subprocess.run(["userdel", self.name], capture_output=True)
            subprocess.run(["groupdel", self.name], capture_output=True)
            for db, what in (("passwd", "user"), ("group", "group")):
                if subprocess.run(["getent", db, self.name],
                                  capture_output=True).returncode == 0:
                    warnings.append(f"{what} '{self.name}' is still in /etc/{db}")
        return warnings


class HostsMirror(threading.Thread):
    """Copies the daemon's hosts file (which it replaces by rename) into `copy` in place, so a
    bind mount of `copy` over /etc/hosts sees each new version, as a real /etc/hosts would."""

    def __init__(self, source: Path, copy: Path) -> None:
        super().__init__(daemon=True)
        self.source, self.copy = source, copy
        self.halt = threading.Event()
        self.copy.write_text(self._read())

    def _read(self) -> str:
        try:
            return self.source.read_text()
        except FileNotFoundError:
            return "127.0.0.1\tlocalhost\n"

    def run(self) -> None:
        last = self.copy.read_text()
        while not self.halt.wait(MIRROR_INTERVAL):
            text = self._read()
            if text != last:
                with open(self.copy, "r+") as f:
                    f.write(text)
                    f.truncate()
                last = text


def in_hosts_ns(hosts: Path, argv: list[str], user: HostUser | None = None) -> list[str]:
    """argv in a private mount namespace where /etc/hosts is `hosts` (as root, or as user)."""
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
              'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]
    if user is not None:
        prefix += ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
                   "--"]
    return prefix + argv


# -- per side --------------------------------------------------------------------------------

class Runner:
    """The steps shared by both sides on one running container; samples survive a failure."""

    def __init__(self, side: Any, args: argparse.Namespace, work: Path) -> None:
        self.side = side
        self.args = args
        self.work = work
        self.samples: dict[str, list[float]] = {}
        self.info: dict[str, Any] = {}
        self.tag = os.urandom(3).hex()

    def log(self, message: str) -> None:
        log(self.side.label, message)

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def exec(self, name: str, command: list[str], check: bool = True) \
            -> subprocess.CompletedProcess[str]:
        return run_checked(self.side.exec_argv(name, command), self.side.env, timeout=300,
                           check=check)

    def cli_floor(self) -> None:
        for _ in range(self.args.runs):
            self.add("cli_floor", wall(self.side.version_argv(), self.side.env) * 1000)

    def launch(self) -> str:
        """A running, booted debian container (never on the host's rootfs: a new one)."""
        name = f"lxmbd-{self.tag}-{self.side.label.lower()}"
        self.side.track(name)
        self.side.cli(*self.side.launch_argv(name)[len(self.side.cli_argv):], timeout=300)
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            state = self.exec(name, ["systemctl", "is-system-running"], check=False).stdout
            if state.strip() in BOOTED:
                break
            time.sleep(0.2)
        self.info["boot_state"] = state.strip()
        self.log(f"{name} up ({state.strip() or 'no state'})")
        return name

    def hotplug(self, name: str) -> None:
        source = self.work / f"hotplug-{self.side.label.lower()}"
        source.mkdir(mode=0o755)
        (source / "marker").write_text("hot-plugged\n")
        cli = self.side.cli_argv
        probe = ["test", "-e", "/mnt/d/marker"]
        for _ in range(self.args.runs):
            self.add("cli_get", wall([*cli, "config", "device", "show", name],
                                     self.side.env) * 1000)
        for _ in range(self.args.runs):
            self.add("hotplug_add", wall([*cli, "config", "device", "add", name, "d", "disk",
                                          f"source={source}", "path=/mnt/d"],
                                         self.side.env) * 1000)
            if self.exec(name, probe, check=False).returncode != 0:
                raise RuntimeError(f"/mnt/d/marker not seen in {name} after device add")
            self.add("hotplug_remove", wall([*cli, "config", "device", "remove", name, "d"],
                                            self.side.env) * 1000)
            if self.exec(name, probe, check=False).returncode == 0:
                raise RuntimeError(f"/mnt/d/marker still seen in {name} after device remove")
        self.api_hotplug(name, source, probe)
        self.log(f"hot-plug add {self._fmt('hotplug_add')}, remove "
                 f"{self._fmt('hotplug_remove')} ms; API add {self._fmt('hotplug_add_api')}, "
                 f"remove {self._fmt('hotplug_remove_api')} ms")

    def api_hotplug(self, name: str, source: Path, probe: list[str]) -> None:
        """The CLI's requests without its start-up: GET the instance, PUT it back with the
        device added (removed), waiting for the operation, on one kept-alive connection."""
        from lxmgr.client import Client

        path = f"/1.0/instances/{name}"
        disk = {"type": "disk", "source": str(source), "path": "/mnt/d"}
        with Client(self.side.socket_path, timeout=120) as client:
            for _ in range(self.args.runs):
                for key, dev in (("hotplug_add_api", disk), ("hotplug_remove_api", None)):
                    t0 = time.perf_counter()
                    obj = client.query("GET", path)
                    devices = dict(obj.get("devices") or {})
                    if dev is None:
                        devices.pop("d")
                    else:
                        devices["d"] = dev
                    client.operate("PUT", path, body={**obj, "devices": devices})
                    self.add(key, (time.perf_counter() - t0) * 1000)
                    seen = self.exec(name, probe, check=False).returncode == 0
                    if seen != (dev is not None):
                        raise RuntimeError(f"/mnt/d/marker {'not ' if dev else ''}seen in "
                                           f"{name} after the API {key.split('_')[1]}")

    def _fmt(self, key: str) -> str:
        return " ".join(f"{v:.0f}" for v in self.samples.get(key, []))

    def io(self, name: str) -> None:
        host_dir = self.work / f"io-{self.side.label.lower()}"
        host_dir.mkdir(mode=0o755)
        self.attach_io(name, host_dir)
        self.info["io_mount"] = shift_mount(self.exec(name, ["cat", "/proc/self/mountinfo"])
                                            .stdout, "/mnt/io")
        self.log(f"{self.info['io_disk']}: mounted as {self.info['io_mount']}")
        where = {"": ["/mnt/io"], "_host": [str(host_dir)]}

        def run(suffix: str, argv_tail: list[str]) -> str:
            argv = argv_tail[:]
            argv[argv.index("@DIR@")] = where[suffix][0]
            if suffix:
                return run_checked(argv, os.environ, timeout=300).stdout
            return self.exec(name, argv).stdout

        mib, files = str(self.args.io_mib), str(self.args.files)
        dd = ["sh", "-c", DD_SCRIPT, "sh", "@DIR@"]
        self.exec(name, ["mkdir", "/mnt/io/files.d"])  # the container root owns it
        for i in range(self.args.runs):
            # Alternate who goes first so neither always runs on a warmer machine.
            order = ("", "_host") if i % 2 == 0 else ("_host", "")
            for suffix in order:
                settle(host_dir)
                out = run(suffix, ["perl", "-e", FILES_PERL, "@DIR@", files]).split()
                for key, ns in zip(("create", "stat", "remove", "syscall"), out, strict=True):
                    self.add(f"{key}{suffix}", int(ns) / 1e6)
            for suffix in order:
                settle(host_dir)
                self.add(f"write{suffix}", self.args.io_mib / dd_seconds(run(suffix, [
                    *dd, "write", mib])))
                self.add(f"read{suffix}", self.args.io_mib / dd_seconds(run(suffix, [
                    *dd, "read"])))
                run(suffix, [*dd, "clean"])
        for key in IO_KEYS:
            self.log(f"{key}: container {self._fmt(key)}, host {self._fmt(key + '_host')}")


    def attach_io(self, name: str, host_dir: Path) -> None:
        """The I/O disk with shift=true; where the daemon refuses it (LXD without liblxc's
        idmapped_mounts_v2 or shiftfs), a plain bind mount of the directory chowned to the
        container root's host uid instead (LXD's other way: a pre-shifted source), said in
        info."""
        added = self.side.cli("config", "device", "add", name, "io", "disk",
                              f"source={host_dir}", "path=/mnt/io", "shift=true", check=False)
        if added.returncode == 0:
            self.info["io_disk"] = "shift=true"
            return
        refusal = added.stderr.strip() or added.stdout.strip()
        if "idmapping" not in refusal or self.side.label != "LXD":
            raise RuntimeError(f"config device add {name} io ... shift=true failed: {refusal}")
        config = json.loads(self.side.cli("query", f"/1.0/instances/{name}").stdout)["config"]
        maps = json.loads(config.get("volatile.idmap.current") or "[]")
        root = {kind: m["Hostid"] for m in maps for kind in ("uid", "gid")
                if m["Nsid"] == 0 and m[f"Is{kind}"]}
        os.chown(host_dir, root["uid"], root["gid"])
        self.side.cli("config", "device", "add", name, "io", "disk", f"source={host_dir}",
                      "path=/mnt/io")
        self.info["io_disk"] = (f"shift=true refused ({refusal.removeprefix('Error: ')}): a "
                                f"plain bind mount of the dir chowned to the container root's "
                                f"host uid {root['uid']}")


def settle(path: Path) -> None:
    """syncfs(2) of path's filesystem before a timed step, so that step does not pay for
    the journal commit (and discards) of what came before it: the first dd of a round was
    otherwise the slower one, whichever side it was. Flushes, drops nothing."""
    subprocess.run(["sync", "-f", str(path)], check=True)


def shift_mount(mountinfo: str, path: str) -> str:
    """'<fstype>, idmapped' (or without idmapped) of the mount at path in a mountinfo text."""
    found = "not mounted"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 9 and fields[4] == path:
            sep = fields.index("-")
            found = f"{fields[sep + 1]}{', idmapped' if 'idmapped' in fields[5] else ''}"
    return found


def dd_seconds(output: str) -> float:
    match = re.search(r"copied, ([0-9.]+) s", output)
    if match is None:
        raise RuntimeError(f"No timing in dd's output: {output.strip()[-200:]}")
    return float(match.group(1))


class DevUp:
    """lxmgr only: the test bridge on the default profile, the host user, `--runs` boxes."""

    def __init__(self, runner: Runner, work: Path) -> None:
        self.runner = runner
        self.side = runner.side
        self.network = f"lxmbd{os.urandom(4).hex()}"
        self.user = HostUser(work / "home")
        self.hosts_copy = work / "hosts"
        self.mirror: HostsMirror | None = None
        self.profile_device = False

    def setup(self) -> None:
        self.side.networks.append(self.network)  # before: cleanup tries even a half-made one
        self.side.cli("network", "create", self.network, "ipv4.address=auto", "ipv4.nat=false",
                      "ipv6.address=none")
        self.side.cli("profile", "device", "add", "default", "eth0", "nic",
                      f"network={self.network}", "name=eth0")
        self.profile_device = True
        self.user.create()
        self.mirror = HostsMirror(Path(self.side.env["LXMGR_HOSTS_FILE"]), self.hosts_copy)
        self.mirror.start()
        self.runner.log(f"network {self.network}, user {self.user.name} (uid {self.user.uid}), "
                        f"home {self.user.home}")

    def ssh(self, host: str) -> subprocess.CompletedProcess[str]:
        argv = ["ssh", "-i", str(self.user.key), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", host, "true"]
        env = {"HOME": str(self.user.home), "USER": self.user.name, "LOGNAME": self.user.name,
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return subprocess.run(in_hosts_ns(self.hosts_copy, argv, self.user), env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    def runs(self) -> None:
        env = {**self.side.env, "SUDO_USER": self.user.name}
        env.pop("XDG_RUNTIME_DIR", None)  # no desktop sockets: root's are not the user's
        ready: list[str] = []
        for i in range(self.runner.args.runs):
            name = f"devb-{self.runner.tag}-{i}"
            host = f"{name}.lxmgr"
            self.side.track(name)
            t0 = time.perf_counter()
            up = subprocess.run(in_hosts_ns(self.hosts_copy, [*self.side.cli_argv, "dev", "up",
                                                              name]),
                                env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=300)
            returned = time.perf_counter() - t0
            if up.returncode != 0:
                raise RuntimeError(f"dev up {name} exited {up.returncode}: "
                                   f"{up.stderr.strip() or up.stdout.strip()}")
            ready += [line for line in up.stdout.splitlines() if line.startswith("Ready:")]
            attempts, last = 0, ""
            while True:
                attempts += 1
                proc = self.ssh(host)
                if proc.returncode == 0:
                    break
                last = proc.stderr.strip()
                if time.perf_counter() - t0 - returned > SSH_TIMEOUT:
                    raise RuntimeError(f"ssh {host} true still fails {SSH_TIMEOUT:.0f} s after "
                                       f"dev up returned: {last}")
                time.sleep(SSH_RETRY)
            first = time.perf_counter() - t0
            t1 = time.perf_counter()
            warm = self.ssh(host)
            if warm.returncode != 0:
                raise RuntimeError(f"second ssh {host} true failed: {warm.stderr.strip()}")
            self.runner.add("ssh_warm", (time.perf_counter() - t1) * 1000)
            self.runner.add("devup_return", returned * 1000)
            self.runner.add("devup_ssh", first * 1000)
            self.runner.info.setdefault("ssh_attempts", []).append(attempts)
            self.runner.log(f"dev up {name}: returned {returned * 1000:.0f} ms, first ssh "
                            f"{first * 1000:.0f} ms ({attempts} attempts"
                            f"{'; last failure: ' + last if last else ''})")
            self.side.cli("delete", name, "--force")
            self.side.created.remove(name)
        self.runner.info["dev_up_said"] = sorted(set(re.sub(r"devb-\w+-\d+", "NAME", line)
                                                     for line in ready))

    def cleanup(self) -> list[str]:
        """Before the side's cleanup: the boxes, the default profile's NIC (the network's
        delete needs both gone), the mirror; the user after the daemon is gone."""
        warnings: list[str] = []
        if self.mirror is not None:
            self.mirror.halt.set()
            self.mirror.join(5)
        for name in list(self.side.created):
            gone = self.side.cli("delete", name, "--force", check=False)
            if gone.returncode == 0:
                self.side.created.remove(name)
        if self.profile_device:
            removed = self.side.cli("profile", "device", "remove", "default", "eth0",
                                    check=False)
            if removed.returncode != 0:
                warnings.append(f"default profile still has eth0: {removed.stderr.strip()}")
        return warnings


def measure_lxmgr(args: argparse.Namespace, image_dir: Path, notes: list[str]) \
        -> dict[str, object]:
    side = LxmgrSide(image_dir, "lxmgr-bench-dev-", "lxmgr-bench-dev")
    side.env.update(LXMGR_HOSTS_FILE=str(side.dir / "hosts"), LXMGR_LXCFS="none")
    (side.dir / "hosts").write_text("127.0.0.1\tlocalhost\n")
    work = make_private_dir("lxmgr-bench-dev-data-")
    (work / "home").mkdir(mode=0o755)
    runner = Runner(side, args, work)
    devup = DevUp(runner, work)
    report: dict[str, object] = {}
    try:
        side.start()
        report["version"] = side.version()
        runner.cli_floor()
        if not args.no_devup:
            devup.setup()
            devup.runs()
        name = runner.launch()
        runner.hotplug(name)
        if not args.no_io:
            runner.io(name)
    except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
        notes.append(f"lxmgr failed: {err}")
        report["error"] = str(err)
        traceback.print_exc(file=sys.stderr)
    finally:
        notes += [f"lxmgr cleanup: {w}" for w in devup.cleanup()]
        cleanup_side(side, notes)
        notes += [f"lxmgr cleanup: {w}" for w in devup.user.remove()]
        notes += [f"lxmgr cleanup: {w}" for w in _remove(work)]
    report.update(summary=summarize(runner.samples, ROWS, scale=1.0), info=runner.info,
                  samples={k: [round(v, 3) for v in vs] for k, vs in runner.samples.items()})
    return report


def measure_lxd(args: argparse.Namespace, image_path: Path, notes: list[str]) \
        -> dict[str, object]:
    side = LxdSide("lxd-bench-dev-")
    work = make_private_dir("lxd-bench-dev-data-")
    runner = Runner(side, args, work)
    report: dict[str, object] = {}
    try:
        side.start(image_path)
        report["version"] = side.version()
        server = json.loads(side.cli("query", "/1.0").stdout)
        features = (server.get("environment") or {}).get("kernel_features") or {}
        runner.info["kernel_features"] = {k: features.get(k) for k in ("idmapped_mounts",
                                                                        "shiftfs")}
        lxc_features = (server.get("environment") or {}).get("lxc_features") or {}
        runner.info["lxc_features"] = {k: v for k, v in lxc_features.items() if "idmap" in k}
        runner.cli_floor()
        name = runner.launch()
        runner.hotplug(name)
        if not args.no_io:
            runner.io(name)
    except Exception as err:  # noqa: BLE001
        notes.append(f"LXD failed: {err}")
        report["error"] = str(err)
        traceback.print_exc(file=sys.stderr)
    finally:
        cleanup_side(side, notes)
        notes += [f"LXD cleanup: {w}" for w in _remove(work)]
    report.update(summary=summarize(runner.samples, ROWS, scale=1.0), info=runner.info,
                  samples={k: [round(v, 3) for v in vs] for k, vs in runner.samples.items()})
    return report


def _remove(path: Path) -> list[str]:
    try:
        warning = remove_private_dir(path)
    except OSError as err:
        warning = f"Failed to remove {path}: {err}"
    return [warning] if warning else []


# -- report ----------------------------------------------------------------------------------

def row_label(key: str, args: dict[str, Any]) -> str:
    return ROWS[key][0].replace("N MiB", f"{args['io_mib']} MiB").replace(
        "F small", f"{args['files']} small").replace("x F calls", f"x {args['files']}")


def render_table(report: dict[str, Any]) -> str:
    table = [["metric", "unit", "lxmgr median", "lxmgr min / max", "LXD median",
              "LXD min / max", "lxmgr/LXD"]]
    for key, (_, unit) in ROWS.items():
        row = [row_label(key, report), unit]
        for side in ("lxmgr", "lxd"):
            data = report.get(side)
            if isinstance(data, dict):
                cell = format_cell(side_summary(report, side, key))
                if side == "lxd" and key in DEVUP_KEYS:
                    cell = (f"no equivalent: {len(LXD_DEVBOX_STEPS)} lxc commands", "")
                row += cell
            else:
                row += [str(data or "-"), ""]
        mine, theirs = side_summary(report, "lxmgr", key), side_summary(report, "lxd", key)
        row.append(f"{mine['median'] / theirs['median']:.2f}" if mine and theirs else "")
        table.append(row)
    return align(table)


def paired_ratio(report: dict[str, Any], side: str, key: str) -> float | None:
    """Median over the runs of container/host, each pair measured back to back (the disk's
    throughput swings more between runs than between the two halves of one)."""
    import statistics

    data = report.get(side)
    if not isinstance(data, dict):
        return None
    box, host = data["samples"].get(key, []), data["samples"].get(f"{key}_host", [])
    pairs = [b / h for b, h in zip(box, host, strict=False) if h > 0]
    return statistics.median(pairs) if pairs else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def render_footer(report: dict[str, Any]) -> str:
    lines = [f"runs: {report['runs']} per row; dd {report['io_mib']} MiB in 1 MiB blocks, "
             f"{report['files']} small files (one perl per round, clock inside); load "
             f"average before {report['load_before']}, after {report.get('load_after', '?')}"]
    for side, label in (("lxmgr", "lxmgr"), ("lxd", "LXD")):
        data = report.get(side)
        if isinstance(data, dict):
            lines.append(f"{label} {data.get('version', '?')}: {json.dumps(data.get('info', {}))}")
    lines.append(f"LXD dev box: no one-command equivalent; LXD 5.0.2's documentation needs "
                 f"{len(LXD_DEVBOX_STEPS)} lxc commands (bench/README.md): "
                 + "; ".join(step for step, _ in LXD_DEVBOX_STEPS))
    ssh = side_summary(report, "lxmgr", "devup_ssh")
    if ssh:
        lines.append(f"target dev up -> first ssh < {TARGET_DEVUP_MS / 1000:.0f} s: "
                     f"{ssh['median'] / 1000:.2f} s, {_verdict(ssh['median'] < TARGET_DEVUP_MS)}")
    for key in ("hotplug_add", "hotplug_remove", "hotplug_add_api", "hotplug_remove_api"):
        mine = side_summary(report, "lxmgr", key)
        if mine:
            how = "API in-process" if key.endswith("_api") else "CLI wall time"
            lines.append(f"target hot-plug {key.split('_')[1]} < {TARGET_HOTPLUG_MS:.0f} ms "
                         f"({how}): {mine['median']:.0f} ms, "
                         f"{_verdict(mine['median'] < TARGET_HOTPLUG_MS)}")
    for side, label in (("lxmgr", "lxmgr"), ("lxd", "LXD")):
        parts = []
        for key in IO_KEYS:
            ratio = paired_ratio(report, side, key)
            if ratio is not None and key == "syscall":
                parts.append(f"getppid {ratio:.2f}x host (no target: the container's "
                             "per-syscall cost, not the disk's)")
            elif ratio is not None:
                slower = (1 - ratio) if key in HIGHER_IS_BETTER else (ratio - 1)
                parts.append(f"{key} {ratio:.2f}x host"
                             f"{' (MISSED)' if slower > TARGET_IO_RATIO else ''}")
        if parts:
            info = report[side].get("info", {})
            disk = "shift=true disk" if info.get("io_disk") == "shift=true" else \
                "plain bind mount (shift=true refused)"
            lines.append(f"{label} {disk} ({info.get('io_mount', '?')}) vs host, median of "
                         f"the runs' container/host ratios, target within "
                         f"{TARGET_IO_RATIO:.0%}: " + ", ".join(parts))
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


# -- host state ------------------------------------------------------------------------------

def host_state() -> set[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
            if line.count(":") >= 2}


def check_host(before: set[str]) -> list[str]:
    notes = []
    left = host_state() - before
    if left:
        notes.append(f"links left on the host: {sorted(left)}")
    leftover_dirs = [str(p) for pattern in ("lxmgr-bench-dev-*", "lxd-bench-dev-*")
                     for p in Path(os.path.realpath("/var/tmp")).glob(pattern)
                     if p.stat().st_mtime >= START_TIME]
    if leftover_dirs:
        notes.append(f"dirs left: {leftover_dirs}")
    users = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith("lxmbd")]
    if users:
        notes.append(f"benchmark users left: {users}")
    if not notes:
        notes.append("host clean: no new links, no lxmbd* user, no dir of this run left")
    return notes


START_TIME = time.time()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install lxd lxd-client when missing")
    parser.add_argument("--no-lxd", action="store_true", help="measure lxmgr only")
    parser.add_argument("--no-devup", action="store_true", help="skip the dev up rows")
    parser.add_argument("--no-io", action="store_true", help="skip the file I/O rows")
    parser.add_argument("--runs", type=int, default=5, help="runs per row (default 5)")
    parser.add_argument("--io-mib", type=int, default=256,
                        help="MiB written and read by dd per run (default 256)")
    parser.add_argument("--files", type=int, default=2000,
                        help="small files created, stat'ed and removed per run (default 2000)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.io_mib < 1 or args.files < 1:
        parser.error("--runs, --io-mib and --files must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not root_and_signals():
        return 1
    if os.uname().machine != "x86_64":
        print("Error: the small-files loop reads the clock with x86_64's syscall number",
              file=sys.stderr)
        return 1
    from tests.image_cache import cached_debian_image, cached_image

    image = cached_debian_image()
    dev_image = cached_image("debian-dev")
    notes: list[str] = []
    report: dict[str, Any] = {"runs": args.runs, "io_mib": args.io_mib, "files": args.files,
                              "images": {"debian": image.fingerprint,
                                         "debian-dev": dev_image.fingerprint},
                              "units": {k: unit for k, (_, unit) in ROWS.items()},
                              "rows": {k: label for k, (label, _) in ROWS.items()},
                              "lxd_devbox_steps": LXD_DEVBOX_STEPS, "notes": notes,
                              "load_before": Path("/proc/loadavg").read_text().split()[0]}
    before = host_state()
    try:
        report["lxmgr"] = measure_lxmgr(args, image.path.parent, notes)
        report["lxd"] = lxd_column(args.no_lxd, args.no_install, notes,
                                   lambda: measure_lxd(args, image.path, notes))
    finally:
        report["load_after"] = Path("/proc/loadavg").read_text().split()[0]
        notes += check_host(before)
        print_report(report, args.json, lambda: render_table(report),
                     lambda: render_footer(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
