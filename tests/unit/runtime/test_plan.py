"""build_plan decisions (namespaces, caps, seccomp, env, stop signal) and the JSON round trip."""

from __future__ import annotations

import signal

from lxmgr.linux import consts as c
from lxmgr.runtime.plan import (
    CAPS_DROP_PRIVILEGED,
    CAPS_DROP_UNPRIVILEGED,
    SECCOMP_DENY,
    RuntimePlan,
    stop_signal_for,
)
from tests.unit.runtime.conftest import IDMAP, UUID, make_plan

DENY = [row[0] for row in SECCOMP_DENY]


def test_unprivileged_plan() -> None:
    plan = make_plan(idmap=IDMAP)
    assert not plan.privileged
    assert plan.namespaces == c.ALL_NAMESPACES
    assert plan.namespaces & c.CLONE_NEWUSER
    assert plan.caps_drop == [row[0] for row in CAPS_DROP_UNPRIVILEGED]
    assert "sys_boot" not in plan.caps_drop  # reboot(2) in a userns only signals PID 1
    assert (plan.seccomp_deny_default, plan.seccomp_deny, plan.seccomp_deny_compat) == \
        (True, [], False)
    assert plan.hostname == "c1"
    assert plan.init == ["/sbin/init"]


def test_privileged_plan() -> None:
    plan = make_plan(idmap=None)
    assert plan.privileged
    assert plan.namespaces == c.ALL_NAMESPACES & ~c.CLONE_NEWUSER
    assert not plan.namespaces & c.CLONE_NEWUSER
    for flag in (c.CLONE_NEWNS, c.CLONE_NEWPID, c.CLONE_NEWNET, c.CLONE_NEWUTS,
                 c.CLONE_NEWIPC, c.CLONE_NEWCGROUP):
        assert plan.namespaces & flag
    assert plan.caps_drop == [row[0] for row in CAPS_DROP_PRIVILEGED]
    assert {"sys_boot", "wake_alarm", "block_suspend"} <= set(plan.caps_drop)
    assert set(row[0] for row in CAPS_DROP_UNPRIVILEGED) <= set(plan.caps_drop)
    assert (plan.seccomp_deny_default, plan.seccomp_deny, plan.seccomp_deny_compat) == \
        (True, [], False)


def test_drop_lists_name_known_capabilities() -> None:
    for name, why in CAPS_DROP_PRIVILEGED:
        assert name in c.CAPABILITIES and why


def test_seccomp_deny_list() -> None:
    assert {"kexec_load", "kexec_file_load", "open_by_handle_at", "init_module",
            "finit_module", "delete_module"} == set(DENY)
    assert all(why for _name, why in SECCOMP_DENY)


def test_seccomp_keys() -> None:
    for value, applied in (("false", False), ("no", False), ("0", False), ("true", True),
                           ("on", True)):
        plan = make_plan(config={"security.syscalls.deny_default": value,
                                 "security.syscalls.deny_compat": value})
        assert plan.seccomp_deny_default is applied and plan.seccomp_deny_compat is applied
    plan = make_plan(config={"security.syscalls.deny": "getcpu\n\n sethostname \ngetcpu\n"})
    assert plan.seccomp_deny == ["getcpu", "sethostname"]
    back = RuntimePlan.from_json(plan.to_json())
    assert back == plan


def test_env_is_exactly_the_container_interface() -> None:
    plan = make_plan(config={"environment.FOO": "bar"})
    assert plan.env == {"container": "lxmgr", "container_uuid": UUID}


def test_stop_signal() -> None:
    rtmin3 = int(signal.SIGRTMIN) + 3
    assert make_plan(init_target="/lib/systemd/systemd").stop_signal == rtmin3
    assert make_plan(init_target="/bin/busybox").stop_signal == int(signal.SIGPWR)
    assert stop_signal_for("/usr/lib/systemd/systemd") == rtmin3
    assert stop_signal_for("/sbin/init") == int(signal.SIGPWR)


def test_plan_copies_cgroup_lists() -> None:
    procs = ["/sys/fs/cgroup/x/cgroup.procs"]
    plan = make_plan(cgroup_procs=procs)
    procs.append("later")
    assert plan.cgroup_procs == ["/sys/fs/cgroup/x/cgroup.procs"]


def test_json_round_trip_unprivileged() -> None:
    plan = make_plan(idmap=IDMAP, cgroup_mounts=[("", "tmpfs", "mode=755"),
                                                 ("cpu", "cgroup", "cpu")])
    back = RuntimePlan.from_json(plan.to_json())
    assert back == plan
    assert back.idmap == IDMAP
    assert back.cgroup_mounts == [("", "tmpfs", "mode=755"), ("cpu", "cgroup", "cpu")]


def test_json_round_trip_privileged() -> None:
    plan = make_plan(idmap=None)
    back = RuntimePlan.from_json(plan.to_json())
    assert back == plan
    assert back.idmap is None and back.privileged


def test_describe() -> None:
    assert "privileged" in make_plan(idmap=None).describe()
    assert "idmap" in make_plan(idmap=IDMAP).describe()
