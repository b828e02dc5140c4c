"""linux.kernel_modules through the CLI and a real daemon: an invalid name and a module that
cannot be loaded each fail `lxmgr launch` with one line, and nothing runs."""

from __future__ import annotations

import pytest

from tests.system.conftest import Daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_module_that_cannot_load_fails_the_launch(daemon: Daemon) -> None:
    # Refused when set once the key's validator is is_kernel_module_list, and at start anyway
    # (modprobe would read '-r' as an option).
    bad = daemon.cli("launch", "debian", "k0", "-c", "linux.kernel_modules=-r", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "Invalid kernel module name '-r'" in bad.stderr
    proc = daemon.cli("launch", "debian", "k1", "-c", "linux.kernel_modules=lxmgr_no_such_mod",
                      check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "Error: Failed to load kernel module 'lxmgr_no_such_mod': "), proc.stderr
    running = [i["name"] for i in daemon.api("GET", "/1.0/instances?recursion=1")["metadata"]
               if i["status"] != "Stopped"]
    assert running == []
