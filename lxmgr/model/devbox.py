"""PURE: what `lxmgr dev up` makes of a host user: the box's devices and config, and the
script that gives the user the same account inside (name, uid, gid, shell, passwordless
sudo, ssh keys). Imports lxmgr.errors only; the CLI reads the user's passwd entry and keys.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from lxmgr.errors import InvalidConfig

DEFAULT_IMAGE = "debian-dev"
USER_KEY = "user.lxmgr.dev"  # the instance config key naming the box's user
HOME_DEVICE = "home"
KEYS_DIR = "/etc/ssh/authorized_keys"  # AuthorizedKeysFile of the debian-dev recipe
GUI_DIR = "/mnt/.lxmgr-gui"  # where the host's desktop sockets appear in the box
GUI_PREFIX = "gui-"  # device names of those sockets
GUI_PROFILE = "/etc/profile.d/lxmgr-gui.sh"  # login shells find them through this
# useradd's rule on Debian (NAME_REGEX of adduser.conf, plus upper case and '.').
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_SAFE_PATH_RE = re.compile(r"^/[^\0\n:]*$")


@dataclass(frozen=True)
class DevUser:
    """A host account as the box copies it."""

    name: str
    uid: int
    gid: int
    group: str
    home: str
    shell: str

    def __post_init__(self) -> None:
        for what, value in (("user", self.name), ("group", self.group)):
            if not _NAME_RE.match(value):
                raise InvalidConfig(f"Invalid {what} name '{value}' for a dev box")
        if self.uid == 0:
            raise InvalidConfig("A dev box is for a normal user, not root: use --user USER "
                                "(or run through sudo, which sets SUDO_USER)")
        for what, value in (("home", self.home), ("shell", self.shell)):
            if not _SAFE_PATH_RE.match(value) or value == "/":
                raise InvalidConfig(f"Invalid {what} '{value}' of user '{self.name}'")


def box_config(user: DevUser) -> dict[str, str]:
    """Config of a new box: it comes back after a host restart, and knows its user."""
    return {"boot.autostart": "true", USER_KEY: user.name}


def box_devices(user: DevUser) -> dict[str, dict[str, str]]:
    """The user's home at the same path, idmapped: their files are theirs on both sides."""
    return {HOME_DEVICE: {"type": "disk", "source": user.home, "path": user.home,
                          "shift": "true"}}


def gui_devices(sockets: dict[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The box's devices and environment for the host's desktop sockets, given as kind ->
    host path: 'wayland' ($XDG_RUNTIME_DIR/wayland-N), 'x11' (/tmp/.X11-unix/XN), 'pulse'
    ($XDG_RUNTIME_DIR/pulse/native), 'pipewire' ($XDG_RUNTIME_DIR/pipewire-0). Each socket
    is bind-mounted (shifted: it stays the user's; required=false: a box whose desktop went
    away still boots), and the variables point programs at it."""
    devices: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for kind, source in sorted(sockets.items()):
        base = source.rsplit("/", 1)[-1]
        if kind == "x11":
            path = f"/tmp/.X11-unix/{base}"
            env["DISPLAY"] = f":{base.removeprefix('X')}"
        else:
            path = f"{GUI_DIR}/{'pulse-native' if kind == 'pulse' else base}"
            env[{"wayland": "WAYLAND_DISPLAY", "pulse": "PULSE_SERVER",
                 "pipewire": "PIPEWIRE_REMOTE"}[kind]] = \
                f"unix:{path}" if kind == "pulse" else path
        devices[f"{GUI_PREFIX}{kind}"] = {"type": "disk", "source": source, "path": path,
                                          "shift": "true", "required": "false"}
    return devices, env


def gui_profile(env: dict[str, str]) -> str:
    """/etc/profile.d text exporting env (empty without sockets)."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))


def provision_script(user: DevUser, gui_env: dict[str, str] | None = None) -> str:
    """A /bin/sh script run as root in the box (the user's public keys on stdin). It can run
    again: an existing account with the same uid is updated, one with another uid refused."""
    q = shlex.quote
    keys = f"{KEYS_DIR}/{user.name}"
    sudoers = f"/etc/sudoers.d/90-lxmgr-dev-{user.name}"
    return f"""set -eu
name={q(user.name)} uid={user.uid} gid={user.gid} group={q(user.group)}
home={q(user.home)} shell={q(user.shell)}
if [ ! -x "$shell" ]; then
    echo "lxmgr: $shell is not installed in the box: the login shell is /bin/bash" >&2
    shell=/bin/bash
fi
if ! getent group "$gid" >/dev/null; then
    if getent group "$group" >/dev/null; then group="$group-$gid"; fi
    groupadd -g "$gid" "$group"
fi
if id -u "$name" >/dev/null 2>&1; then
    if [ "$(id -u "$name")" != "$uid" ]; then
        echo "user $name already exists in the box with uid $(id -u "$name"), not $uid" >&2
        exit 3
    fi
    usermod -g "$gid" -d "$home" -s "$shell" "$name"
else
    if taken=$(getent passwd "$uid"); then
        echo "uid $uid is already used in the box by ${{taken%%:*}}" >&2
        exit 3
    fi
    useradd -u "$uid" -g "$gid" -M -d "$home" -s "$shell" "$name"
fi
if getent group sudo >/dev/null; then usermod -aG sudo "$name"; fi
if [ -d /etc/sudoers.d ]; then
    printf '%s ALL=(ALL:ALL) NOPASSWD:ALL\\n' "$name" > {q(sudoers)}
    chmod 0440 {q(sudoers)}
fi
install -d -m 0755 {q(KEYS_DIR)}
cat > {q(keys)}
chmod 0644 {q(keys)}
""" + (f"printf %s {q(gui_profile(gui_env))} > {GUI_PROFILE}\n" if gui_env else
       f"rm -f {GUI_PROFILE}\n")


def public_keys(texts: list[str]) -> str:
    """The authorized_keys text of the user's public key files (comments, blanks dropped)."""
    lines = []
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#") and line not in lines:
                lines.append(line)
    return "".join(f"{line}\n" for line in lines)
