"""A real debian container booted with systemd as PID 1: namespaces, ids, the Container
Interface and the escapes an unprivileged root must not achieve."""

from __future__ import annotations

import os
import socket

import pytest

from tests.kernel.conftest import exec_out

pytestmark = pytest.mark.kernel

NAMESPACES = ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def init_pid(manager, name: str) -> int:  # type: ignore[no-untyped-def]
    return int(manager.state(name)["pid"])


def test_boot_reaches_running_with_no_failed_unit(manager, container) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = exec_out(manager, container, ["systemctl", "is-system-running", "--wait"])
    assert (code, out.strip()) == (0, "running")
    _, failed, _ = exec_out(manager, container, ["systemctl", "--failed", "--no-legend"])
    assert failed.strip() == ""
    _, comm, _ = exec_out(manager, container, ["cat", "/proc/1/comm"])
    assert comm.strip() == "systemd"


def test_pid1_runs_in_all_eight_namespaces(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = init_pid(manager, container)
    for ns in NAMESPACES:
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns


def test_unprivileged_root_maps_to_a_host_range(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = init_pid(manager, container)
    status = read(f"/proc/{pid}/status")
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert all(int(u) >= 100000 for u in uids)
    assert read(f"/proc/{pid}/uid_map").split() == ["0", uids[0], "65536"]
    # Files of the shared image look root-owned inside.
    _, out, _ = exec_out(manager, container, ["stat", "-c", "%u:%g", "/etc/passwd", "/"])
    assert out.split() == ["0:0", "0:0"]
    # A file written inside lands in the upper layer owned by the mapped root.
    exec_out(manager, container, ["sh", "-c", "echo hi > /root/new"])
    spec = manager.build_supervisor_config(manager.get(container)).plan.rootfs_spec
    assert os.stat(os.path.join(spec["upper"], "root/new")).st_uid == int(uids[0])


def test_container_interface(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = init_pid(manager, container)
    env = read_bytes(f"/proc/{pid}/environ").split(b"\0")
    env = sorted(e.decode() for e in env if e)
    uuid = manager.get(container).config["volatile.uuid"]
    assert env == ["container=lxmgr", f"container_uuid={uuid}"]
    _, out, _ = exec_out(manager, container, ["hostname"])
    assert out.strip() == container
    _, dev, _ = exec_out(manager, container, ["ls", "/dev"])
    for node in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                 "console", "tty1"):
        assert node in dev.split(), node
    _, mounts, _ = exec_out(manager, container, ["cat", "/proc/self/mountinfo"])
    lines = mounts.splitlines()
    assert any(" /dev/pts " in ln and "devpts" in ln for ln in lines)
    sys_line = next(ln for ln in lines if ln.split()[4] == "/sys")
    assert " ro," in sys_line or sys_line.split()[5].startswith("ro")
    # The old root is detached: no host path such as the instance storage is visible.
    assert not any("/storage/overlay" in ln.split()[4] for ln in lines)
    code, _, _ = exec_out(manager, container, ["test", "-c", "/dev/console"])
    assert code == 0
    # systemd's boot messages reached the supervisor's console ring through that pty.
    assert "Reached target" in manager.console_log(container)


def test_proc_sys_readonly_but_net_writable(manager, container) -> None:  # type: ignore[no-untyped-def]
    code, _, err = exec_out(manager, container,
                            ["sh", "-c", "echo 1 > /proc/sys/kernel/domainname"])
    assert code != 0 and "Read-only" in err
    code, _, err = exec_out(manager, container,
                            ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
    assert code == 0, err


@pytest.mark.parametrize("attempt", [
    "echo b > /proc/sysrq-trigger",
    "head -c 16 /proc/kcore",
    "echo '|/tmp/x' > /proc/sys/kernel/core_pattern",
    "mkdir -p /tmp/cg && mount -t cgroup -o memory none /tmp/cg && "
    "echo /tmp/x > /tmp/cg/release_agent",
    "mkdir -p /tmp/cg2 && mount -t cgroup -o none,name=lxmgrescape none /tmp/cg2",
    "echo 1 > /sys/kernel/mm/transparent_hugepage/enabled",
])
def test_escape_attempts_fail(manager, container, attempt: str) -> None:  # type: ignore[no-untyped-def]
    before = read("/proc/sys/kernel/core_pattern")
    code, _, _ = exec_out(manager, container, ["sh", "-c", attempt])
    assert code != 0
    assert read("/proc/sys/kernel/core_pattern") == before


@pytest.mark.parametrize("syscall,nr,args", [
    ("open_by_handle_at", 304, "3, 0, 0"),
    ("init_module", 175, "0, 0, 0"),
    ("finit_module", 313, "0, 0, 0"),
    ("delete_module", 176, "0, 0"),
    ("kexec_load", 246, "0, 0, 0, 0"),
    ("kexec_file_load", 320, "0, 0, 0, 0, 0"),
])
def test_default_list_gets_enosys(manager, container, syscall: str, nr: int, args: str) -> None:  # type: ignore[no-untyped-def]
    script = f"my $r = syscall({nr}, {args}); print $r == -1 ? ($!+0) : 'ok'"
    code, out, err = exec_out(manager, container, ["perl", "-e", script])
    assert (code, out) == (0, "38"), (syscall, out, err)  # 38 = ENOSYS, as LXD's "errno 38"


def test_hostname_and_proc_stay_in_the_container(manager, container) -> None:  # type: ignore[no-untyped-def]
    host = socket.gethostname()
    code, _, err = exec_out(manager, container, ["hostname", "evil"])
    assert code == 0, err
    _, out, _ = exec_out(manager, container, ["hostname"])
    assert out.strip() == "evil"
    assert socket.gethostname() == host
    _, listing, _ = exec_out(manager, container, ["ls", "/proc"])
    pids = {int(p) for p in listing.split() if p.isdigit()}
    sup = int(manager.state(container)["supervisor_pid"])
    assert os.getpid() not in pids and sup not in pids and 1 in pids
    assert max(pids) < 1000  # only the container's own small pid namespace


def test_capabilities_seccomp_and_no_leaked_fds(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = init_pid(manager, container)
    status = dict(line.split(":\t", 1) for line in read(f"/proc/{pid}/status")
                  .splitlines() if ":\t" in line)
    bounding = int(status["CapBnd"], 16)
    for cap in (16, 17, 25, 32, 33):  # sys_module, sys_rawio, sys_time, mac_override, mac_admin
        assert not bounding & (1 << cap), cap
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "0"
    _, fds, _ = exec_out(manager, container, ["ls", "/proc/self/fd"])
    assert sorted(int(f) for f in fds.split()) == [0, 1, 2, 3]  # 3: ls's own directory
