"""The device access list on the real kernel: lxmgr's BPF_PROG_TYPE_CGROUP_DEVICE program
attached to a cgroup2 directory of our own, and the v1 devices controller, each checked
by a forked child in the cgroup opening nodes. A node the list allows but no driver backs
(char 60:0, a major reserved for local use) opens with ENXIO; one the list refuses fails
with EPERM before any driver is asked: that tells "allowed" from "refused" harmlessly."""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.cgroups import Layout, detect, load
from lxmgr.cgroups.devices import apply_v1, attach_program, attached_programs, parse_rules
from lxmgr.runtime.plan import DEVICE_RULES

pytestmark = pytest.mark.kernel

UNIFIED = "/sys/fs/cgroup/unified"
V1_DEVICES = "/sys/fs/cgroup/devices"


def _cgroup_dir(root: str) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists(os.path.join(root, "cgroup.procs")):
        pytest.skip(f"no cgroup hierarchy at {root}")
    path = os.path.join(root, f"lxmgr-test-dev-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -len(w[0])):
            os.rmdir(dirpath)


@pytest.fixture
def cgroup2() -> Iterator[str]:
    """A cgroup2 directory of ours (on a hybrid host, in the unified tree)."""
    root = UNIFIED if os.path.ismount(UNIFIED) else "/sys/fs/cgroup"
    yield from _cgroup_dir(root)


@pytest.fixture
def cgroup_v1() -> Iterator[str]:
    """A directory of ours in the v1 devices hierarchy."""
    yield from _cgroup_dir(V1_DEVICES)


@pytest.fixture
def nodes(tmp_path: Path) -> dict[str, str]:
    """null: char 1:3 under another name; local: char 60:0 (no driver)."""
    made = {"null": (1, 3), "local": (60, 0)}
    for name, (major, minor) in made.items():
        os.mknod(tmp_path / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    return {name: str(tmp_path / name) for name in made}


def opens_in(cgroup: str | list[str], paths: list[str]) -> dict[str, str]:
    """Open each path read-write from a child that joined `cgroup` (or each of a list):
    'ok' or the errno name."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            for directory in [cgroup] if isinstance(cgroup, str) else cgroup:
                with open(os.path.join(directory, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            result = {}
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDWR))
                    result[path] = "ok"
                except OSError as err:
                    result[path] = errno.errorcode[err.errno]
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_bpf_program_allows_exactly_the_list(cgroup2: str, nodes: dict[str, str]) -> None:
    attach_program(cgroup2, parse_rules(DEVICE_RULES))
    assert len(attached_programs(cgroup2)) == 1
    paths = ["/dev/null", "/dev/urandom", nodes["null"], nodes["local"]]
    if os.path.exists("/dev/loop-control"):
        paths.append("/dev/loop-control")
    result = opens_in(cgroup2, paths)
    assert result.pop("/dev/null") == "ok" and result.pop("/dev/urandom") == "ok"
    # Allowed by its numbers, whatever its name or place: a node is not a path.
    assert result.pop(nodes["null"]) == "ok"
    assert set(result.values()) == {"EPERM"}, result


def test_bpf_program_update_replaces_it(cgroup2: str, nodes: dict[str, str]) -> None:
    attach_program(cgroup2, parse_rules(DEVICE_RULES))
    first = attached_programs(cgroup2)
    attach_program(cgroup2, parse_rules([*DEVICE_RULES, "c 60:0 rwm"]))
    second = attached_programs(cgroup2)
    assert len(second) == 1 and second != first  # the old program was detached
    assert opens_in(cgroup2, [nodes["local"]]) == {nodes["local"]: "ENXIO"}  # now allowed
    # A child cgroup made meanwhile follows (cgroup2 programs apply to the subtree).
    child = os.path.join(cgroup2, "sub")
    os.mkdir(child)
    assert opens_in(child, [nodes["local"]]) == {nodes["local"]: "ENXIO"}
    attach_program(cgroup2, parse_rules(DEVICE_RULES))
    assert opens_in(child, [nodes["local"], nodes["null"]]) == {
        nodes["local"]: "EPERM", nodes["null"]: "ok"}
    assert len(attached_programs(cgroup2)) == 1


def test_v1_list_and_hotplug(cgroup_v1: str, nodes: dict[str, str]) -> None:
    apply_v1(cgroup_v1, parse_rules(DEVICE_RULES))
    listed = Path(cgroup_v1, "devices.list").read_text().split("\n")
    assert sorted(filter(None, listed)) == sorted(DEVICE_RULES)
    assert opens_in(cgroup_v1, ["/dev/null", nodes["null"], nodes["local"]]) == {
        "/dev/null": "ok", nodes["null"]: "ok", nodes["local"]: "EPERM"}
    # Two child cgroups, as the container's init makes them: one keeps its copy of the
    # list, the other (a service with a device policy of its own) narrows it.
    copy, own = os.path.join(cgroup_v1, "copy"), os.path.join(cgroup_v1, "own")
    os.mkdir(copy)
    os.mkdir(own)
    Path(own, "devices.deny").write_text("c 1:3 rwm")
    apply_v1(cgroup_v1, parse_rules([*DEVICE_RULES, "c 60:0 rwm"]))
    assert opens_in(cgroup_v1, [nodes["local"]]) == {nodes["local"]: "ENXIO"}
    assert opens_in(copy, [nodes["local"]]) == {nodes["local"]: "ENXIO"}
    assert opens_in(own, [nodes["local"], nodes["null"]]) == {
        nodes["local"]: "EPERM", nodes["null"]: "EPERM"}
    # Unplug: the kernel takes the removal down the whole subtree.
    apply_v1(cgroup_v1, parse_rules(DEVICE_RULES))
    for path in (cgroup_v1, copy, own):
        assert opens_in(path, [nodes["local"]]) == {nodes["local"]: "EPERM"}
    assert opens_in(copy, [nodes["null"]]) == {nodes["null"]: "ok"}


@pytest.fixture
def driver_v2() -> Iterator:  # type: ignore[type-arg]
    """The v2 driver on this host's cgroup2 tree (on a hybrid host, the unified one)."""
    layout = detect()
    if os.geteuid() != 0 or layout.unified is None:
        pytest.skip("needs root and a cgroup2 tree")
    drv = load("v2", f"lxmgr-test-{uuid.uuid4().hex[:8]}", Layout("unified", [layout.unified]))
    try:
        yield drv
    finally:
        drv.delete("c1")
        drv.delete_base()


def test_v2_driver_applies_the_list(driver_v2, nodes: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    driver_v2.create("c1", 0, 0)
    path = driver_v2.path(driver_v2.hierarchies[0], "c1")
    driver_v2.apply_devices("c1", [*DEVICE_RULES, "c 60:0 rwm"])
    assert opens_in(path, [nodes["null"], nodes["local"], "/dev/null"]) == {
        nodes["null"]: "ok", nodes["local"]: "ENXIO", "/dev/null": "ok"}
    driver_v2.apply_devices("c1", DEVICE_RULES)
    assert opens_in(path, [nodes["local"]]) == {nodes["local"]: "EPERM"}
    assert len(attached_programs(path)) == 1


def test_v1_driver_on_a_hybrid_host_applies_both(nodes: dict[str, str]) -> None:
    layout = detect()
    if os.geteuid() != 0 or layout.driver_name != "v1" or layout.unified is None \
            or layout.find("devices") is None:
        pytest.skip("needs root on a hybrid host with the devices controller")
    drv = load("v1", f"lxmgr-test-{uuid.uuid4().hex[:8]}", layout)
    try:
        drv.create("c1", 0, 0)
        drv.apply_devices("c1", [*DEVICE_RULES, "c 60:0 rwm"])
        v1 = drv.path(layout.find("devices"), "c1")
        v2 = drv.path(layout.unified, "c1")
        assert "c 60:0 rwm" in Path(v1, "devices.list").read_text().split("\n")
        assert len(attached_programs(v2)) == 1
        # Each alone enforces the list: a child in only one of them is refused all the same.
        for only in (v1, v2):
            assert opens_in(only, [nodes["local"], nodes["null"]]) == {
                nodes["local"]: "ENXIO", nodes["null"]: "ok"}
        drv.apply_devices("c1", DEVICE_RULES)
        for only in (v1, v2):
            assert opens_in(only, [nodes["local"]]) == {nodes["local"]: "EPERM"}
    finally:
        drv.delete("c1")
        drv.delete_base()
