"""security.nesting on the real thing: LXC 5.0 inside an lxmgr container boots an
unprivileged container of its own (a busybox rootfs, its own user, mount, pid, uts, ipc and
cgroup namespaces, an id map inside the outer's), attaches to it, stops and destroys it;
without the key the same start fails where the kernel refuses the nested proc mount.

The outer container runs the debian-nest image (tests/recipes/debian-nest.yaml: debian plus
lxc, uidmap and busybox-static; nothing is installed at test time). Its isolated map is
200000 ids wide so that the nested map (100000 ids up, 65536 wide) fits inside it, as LXC
needs every id it maps to be mapped in its own namespace (user_namespaces(7)). LXC needs no
cgroup settings here: the outer's cgroup namespace makes its own cgroup the root of each
hierarchy it sees (v1 controllers and the unified one on a hybrid host), owned by its root,
so LXC creates lxc.monitor.inner, lxc.payload.inner and lxc.pivot there itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.image_cache import cached_image
from tests.kernel.conftest import exec_out, wait_running
from tests.private_state import link_cached_image

pytestmark = pytest.mark.kernel

RECIPE = Path(__file__).parents[1] / "recipes" / "debian-nest.yaml"
OUTER = {"security.idmap.isolated": "true", "security.idmap.size": "200000"}
INNER_BASE, INNER_SIZE = 100000, 65536
INNER_DIR = "/var/lib/lxc/inner"

# The nested container, made by hand as LXC's busybox template would: a private rootfs
# owned by the nested root, a config with the map of /etc/sub[ug]id (newuidmap checks it),
# no NIC, the proc and sysfs mounts of LXC's common.conf, busybox init halted by SIGUSR1.
# The directory must be searchable by the nested root (LXC opens the rootfs as that id).
PREPARE = f"""set -e
echo root:{INNER_BASE}:{INNER_SIZE} > /etc/subuid
echo root:{INNER_BASE}:{INNER_SIZE} > /etc/subgid
mkdir -p {INNER_DIR}/rootfs && cd {INNER_DIR}/rootfs
mkdir -p bin sbin etc proc sys dev tmp root
cp /bin/busybox bin/busybox
for applet in sh cat sleep ps; do ln -s busybox bin/$applet; done
ln -s ../bin/busybox sbin/init
printf '::sysinit:/bin/true\\n::respawn:/bin/sleep 1000000\\n' > etc/inittab
chown -R {INNER_BASE}:{INNER_BASE} {INNER_DIR}/rootfs
chmod 0711 {INNER_DIR}
cat > {INNER_DIR}/config <<EOF
lxc.uts.name = inner
lxc.rootfs.path = dir:{INNER_DIR}/rootfs
lxc.idmap = u 0 {INNER_BASE} {INNER_SIZE}
lxc.idmap = g 0 {INNER_BASE} {INNER_SIZE}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
lxc.init.cmd = /sbin/init
lxc.signal.halt = SIGUSR1
lxc.tty.max = 0
EOF
"""
START = ["lxc-start", "-n", "inner", "-d", "-l", "ERROR", "-o", "/root/inner.log"]


@pytest.fixture(scope="session")
def nest_image():  # type: ignore[no-untyped-def]
    """The debian-nest image (built once, ~45 s, then cached beside debian's)."""
    return cached_image(str(RECIPE))


@pytest.fixture
def nest_manager(manager, nest_image):  # type: ignore[no-untyped-def]
    """The kernel tests' private manager, its store holding debian-nest too."""
    link_cached_image(os.environ["LXMGR_DIR"], str(RECIPE))
    return manager


def run(mgr, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(mgr, name, ["sh", "-c", script])
    assert code == 0, f"{script!r} exited {code}: {err}"
    return out


def host_pid(outer_init: int, pid: int) -> int:
    """The host's pid of the init of a namespace nested in outer_init's pid namespace, known
    there as `pid` (NSpid: host, outer, 1; its parent lives in outer_init's namespace)."""
    outer_ns = os.readlink(f"/proc/{outer_init}/ns/pid")
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = {k: v.split() for k, _, v in (line.partition(":") for line in f)}
            if fields["NSpid"][1:] == [str(pid), "1"] and \
                    os.readlink(f"/proc/{fields['PPid'][0]}/ns/pid") == outer_ns:
                return int(entry)
        except (OSError, KeyError, IndexError):
            continue
    raise AssertionError(f"No process is pid {pid} in the namespace of {outer_init}")


def map_of(pid: int, kind: str) -> list[str]:
    with open(f"/proc/{pid}/{kind}_map") as f:
        return f.read().split()


@pytest.mark.parametrize("nesting", [True, False], ids=["nesting", "no-nesting"])
def test_lxc_boots_an_unprivileged_container_inside(nest_manager, nesting, capsys) -> None:  # type: ignore[no-untyped-def]
    mgr = nest_manager
    config = {**OUTER, "security.nesting": "true"} if nesting else dict(OUTER)
    mgr.create("lxcn1", "debian-nest", config=config)
    mgr.start("lxcn1")
    assert wait_running(mgr, "lxcn1") == "running"
    run(mgr, "lxcn1", PREPARE)

    started = time.monotonic()
    code, _, err = exec_out(mgr, "lxcn1", START)
    took = time.monotonic() - started
    log = exec_out(mgr, "lxcn1", ["cat", "/root/inner.log"])[1]
    if not nesting:
        # LXC's first automatic mount: the kernel refuses a proc in a user namespace made
        # in a mount namespace whose only proc has masks over it (mount_too_revealing()).
        assert code != 0
        assert 'Failed to mount "proc"' in log and "Operation not permitted" in log, log
        assert run(mgr, "lxcn1", "lxc-info -n inner -sH").strip() == "STOPPED"
        return
    assert code == 0, err + log
    assert run(mgr, "lxcn1", "lxc-info -n inner -sH").strip() == "RUNNING"
    inner_map = ["0", str(INNER_BASE), str(INNER_SIZE)]
    assert run(mgr, "lxcn1", "lxc-attach -n inner -- cat /proc/self/uid_map").split() == inner_map
    assert run(mgr, "lxcn1", "lxc-attach -n inner -- cat /proc/self/gid_map").split() == inner_map
    assert run(mgr, "lxcn1", "lxc-attach -n inner -- cat /proc/1/comm").strip() == "init"

    # Seen from the host, the nested root is an id of the outer's range, not the outer's
    # root nor the host's.
    outer_init = mgr.state("lxcn1")["pid"]
    outer_base = int(map_of(outer_init, "uid")[1])
    inner_init = host_pid(outer_init, int(run(mgr, "lxcn1", "lxc-info -n inner -pH")))
    assert map_of(inner_init, "uid") == ["0", str(outer_base + INNER_BASE), str(INNER_SIZE)]
    assert os.stat(f"/proc/{inner_init}").st_uid == outer_base + INNER_BASE

    started = time.monotonic()
    run(mgr, "lxcn1", "lxc-stop -n inner")  # busybox init's halt: TERM, 1 s, KILL, 1 s
    with capsys.disabled():
        print(f"\nnested lxc-start -d (returns once RUNNING): {took:.2f} s, "
              f"lxc-stop: {time.monotonic() - started:.2f} s")
    assert run(mgr, "lxcn1", "lxc-info -n inner -sH").strip() == "STOPPED"
    run(mgr, "lxcn1", f"lxc-destroy -n inner && test ! -e {INNER_DIR}")
