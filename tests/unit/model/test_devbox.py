"""What `lxmgr dev up` makes of a host user: devices, config, the account script."""

from __future__ import annotations

import subprocess

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model import devbox

ALICE = devbox.DevUser(name="alice", uid=1000, gid=1000, group="alice", home="/home/alice",
                       shell="/bin/zsh")


def test_home_is_an_idmapped_disk_at_the_same_path() -> None:
    assert devbox.box_devices(ALICE) == {"home": {"type": "disk", "source": "/home/alice",
                                                  "path": "/home/alice", "shift": "true"}}
    assert devbox.box_config(ALICE) == {"boot.autostart": "true", "user.lxmgr.dev": "alice"}


@pytest.mark.parametrize("field,value,message", [
    ("name", "al ice", "Invalid user name"), ("name", "-x", "Invalid user name"),
    ("group", "a;b", "Invalid group name"), ("uid", 0, "not root"),
    ("home", "/", "Invalid home"), ("home", "/home/a:b", "Invalid home"),
    ("shell", "zsh", "Invalid shell"),
])
def test_bad_users_refused(field: str, value: object, message: str) -> None:
    fields = {**ALICE.__dict__, field: value}
    with pytest.raises(InvalidConfig, match=message):
        devbox.DevUser(**fields)


def test_script_is_valid_sh_with_quoted_values() -> None:
    user = devbox.DevUser(name="o.brien", uid=1001, gid=1001, group="o.brien",
                          home="/home/o'brien dir", shell="/bin/bash")
    script = devbox.provision_script(user)
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0
    assert "home='/home/o'\"'\"'brien dir'" in script
    assert "/etc/ssh/authorized_keys/o.brien" in script


def test_public_keys_dedup_and_drop_comments() -> None:
    assert devbox.public_keys(["ssh-ed25519 AAA a@h\n# c\n\n", "ssh-ed25519 AAA a@h\n",
                               "ssh-rsa BBB\n"]) == "ssh-ed25519 AAA a@h\nssh-rsa BBB\n"


def test_gui_sockets_become_optional_shifted_disks_and_variables() -> None:
    devices, env = devbox.gui_devices({
        "wayland": "/run/user/1000/wayland-0", "x11": "/tmp/.X11-unix/X1",
        "pulse": "/run/user/1000/pulse/native", "pipewire": "/run/user/1000/pipewire-0"})
    assert devices["gui-wayland"] == {"type": "disk", "source": "/run/user/1000/wayland-0",
                                      "path": "/mnt/.lxmgr-gui/wayland-0", "shift": "true",
                                      "required": "false"}
    assert devices["gui-x11"]["path"] == "/tmp/.X11-unix/X1"
    assert env == {"WAYLAND_DISPLAY": "/mnt/.lxmgr-gui/wayland-0", "DISPLAY": ":1",
                   "PULSE_SERVER": "unix:/mnt/.lxmgr-gui/pulse-native",
                   "PIPEWIRE_REMOTE": "/mnt/.lxmgr-gui/pipewire-0"}
    script = devbox.provision_script(ALICE, env)
    assert "export WAYLAND_DISPLAY=/mnt/.lxmgr-gui/wayland-0" in script
    assert devbox.gui_devices({}) == ({}, {})
    assert "rm -f /etc/profile.d/lxmgr-gui.sh" in devbox.provision_script(ALICE, {})
