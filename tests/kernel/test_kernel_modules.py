"""linux.kernel_modules on real containers: a module the host already has (in /sys/module,
where LXD's util.LoadModule looks) lets the instance start; a module that cannot be loaded
fails the start with one clear line and leaves nothing running (no supervisor, no cgroup)."""

from __future__ import annotations

import os
import uuid

import pytest

from lxmgr.errors import HostNotReady

pytestmark = pytest.mark.kernel

MISSING = "lxmgr_no_such_module"


def loaded_module() -> str:
    """A module this host has loaded (or built in with parameters): its /sys/module entry.
    /proc/modules would list only loadable ones (and is absent without CONFIG_MODULES)."""
    try:
        with open("/proc/modules") as f:
            names = [line.split()[0] for line in f if line.strip()]
    except OSError:
        names = []
    for name in [*names, "overlay", "bridge", "ext4"]:
        if os.path.isdir(f"/sys/module/{name}"):
            return name
    pytest.skip("no module in /sys/module to ask for")


def test_loaded_module_lets_the_instance_start(manager) -> None:  # type: ignore[no-untyped-def]
    name = f"m{uuid.uuid4().hex[:8]}"
    module = loaded_module()
    manager.create(name, "debian", config={"linux.kernel_modules": f"{module}, {module}"})
    assert manager.start(name) > 0
    assert manager.status(name) == "Running"
    manager.stop(name, force=True)


def test_missing_module_fails_the_start(manager) -> None:  # type: ignore[no-untyped-def]
    name = f"m{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian",
                   config={"linux.kernel_modules": f"{loaded_module()},{MISSING}"})
    with pytest.raises(HostNotReady) as err:
        manager.start(name)
    message = str(err.value)
    assert message.startswith(f"Failed to load kernel module '{MISSING}': ")
    assert "\n" not in message and len(message) < 300
    assert manager.status(name) == "Stopped"
    assert not os.path.exists(manager.socket_path(name))
    assert not manager.cgroups.exists(name)
    # Nothing half-started: with the module dropped from the list, the next start boots.
    manager.update_config(name, {}, unset=["linux.kernel_modules"])
    assert manager.start(name) > 0 and manager.status(name) == "Running"
    manager.stop(name, force=True)
