"""Config keys on real instances: what is accepted is applied, the rest refused by name."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig

pytestmark = pytest.mark.kernel


def test_cloud_init_keys_need_an_image_with_cloud_init(manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="image 'debian' has no cloud-init"):
        manager.create("ci1", "debian", config={"cloud-init.user-data": "#cloud-config\n"})
    assert manager.list() == []
    manager.create("ci1", "debian")
    with pytest.raises(InvalidConfig, match="first boot of 'ci1' only"):
        manager.update_config("ci1", {"cloud-init.user-data": "#cloud-config\n"})
    assert "cloud-init.user-data" not in manager.get("ci1").config


NESTED = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--fork",
          "--mount-proc",
          "sh", "-c", "mount -t sysfs sysfs /sys && echo $$ && ls /sys/class/net"]


@pytest.mark.parametrize("nesting", [False, True])
def test_nesting_lets_a_nested_user_namespace_mount_proc_and_sysfs(manager, nesting) -> None:  # type: ignore[no-untyped-def]
    """What a nested unprivileged container needs first (LXC or lxmgr inside make exactly
    these mounts): a user, mount and pid namespace made inside mounts its own proc and
    sysfs (for its own network namespace); without security.nesting the kernel refuses,
    the masks on /proc and the read-only /sys being locked in a nested mount namespace."""
    from tests.kernel.conftest import exec_out, wait_running

    config = {"security.nesting": "true"} if nesting else {}
    manager.create("nest1", "debian", config=config)
    manager.start("nest1")
    assert wait_running(manager, "nest1") == "running"
    code, out, err = exec_out(manager, "nest1", NESTED)
    if nesting:
        assert code == 0, err
        assert out.split()[0] == "1" and "lo" in out.split()  # PID 1 of its own namespace
    else:
        assert code != 0 and "Operation not permitted" in err
