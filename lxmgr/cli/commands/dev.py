"""`lxmgr dev up|shell|down`: a development box in one command.

`dev up` makes (or brings back) a container in which the calling user exists with the same
name, uid, gid and shell, with passwordless sudo and their ssh public keys, their home
mounted at the same path (idmapped, so files are theirs on both sides), sshd running and the
box reachable as NAME.<dns.domain> from the host. LXD has no one-command equivalent.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import Any

import click

from lxmgr.cli.actions import change_state, run_command, want_pty
from lxmgr.cli.app import App
from lxmgr.cli.options import get_app
from lxmgr.errors import NotFound
from lxmgr.model import devbox

WAIT_ADDRESS = 30.0  # seconds for the box's first DHCP lease
WAIT_SSH = 30.0  # and then for its sshd to accept connections
WAIT_NAME = 5.0  # and for the host to resolve NAME.DOMAIN (the daemon's hosts block)


@click.group()
def dev() -> None:
    """Development boxes: your account, home and ssh keys in a container.

    \b
    Examples:
      sudo lxmgr dev up dev1            # then: ssh dev1.lxmgr
      lxmgr dev shell dev1
      lxmgr dev down dev1 --rm
    """


def host_user(name: str | None) -> devbox.DevUser:
    """USER, else $SUDO_USER (sudo lxmgr dev up), else the caller."""
    import grp
    import pwd

    wanted = name or os.environ.get("SUDO_USER") or None
    try:
        entry = pwd.getpwnam(wanted) if wanted else pwd.getpwuid(os.getuid())
    except KeyError:
        raise NotFound(f"User '{wanted}' not found on this host") from None
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = entry.pw_name
    return devbox.DevUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, group=group,
                          home=entry.pw_dir, shell=entry.pw_shell or "/bin/bash")


def read_public_keys(home: str) -> str:
    """The user's ~/.ssh/*.pub, as authorized_keys text."""
    ssh_dir = os.path.join(home, ".ssh")
    texts = []
    try:
        names = sorted(os.listdir(ssh_dir))
    except OSError:
        return ""
    for entry in names:
        if entry.endswith(".pub"):
            try:
                with open(os.path.join(ssh_dir, entry)) as f:
                    texts.append(f.read())
            except OSError:
                continue
    return devbox.public_keys(texts)


def desktop_sockets(user: devbox.DevUser) -> dict[str, str]:
    """The user's desktop sockets on this host (kind -> path): Wayland, X11, PulseAudio,
    PipeWire; their runtime dir is $XDG_RUNTIME_DIR when it is theirs, else /run/user/UID."""
    import glob
    import stat

    runtime = os.environ.get("XDG_RUNTIME_DIR") or ""
    try:
        if not runtime or os.stat(runtime).st_uid != user.uid:
            runtime = f"/run/user/{user.uid}"
    except OSError:
        runtime = f"/run/user/{user.uid}"
    candidates = {
        "wayland": sorted(p for p in glob.glob(f"{runtime}/wayland-[0-9]*")
                          if not p.endswith(".lock")),
        "x11": sorted(glob.glob("/tmp/.X11-unix/X[0-9]*")),
        "pulse": [f"{runtime}/pulse/native"],
        "pipewire": [f"{runtime}/pipewire-0"],
    }
    found = {}
    for kind, paths in candidates.items():
        for path in paths:
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    found[kind] = path
                    break
            except OSError:
                continue
    return found


@dev.command("up")
@click.argument("name")
@click.argument("image", required=False, default=devbox.DEFAULT_IMAGE)
@click.option("--user", "user_name", metavar="USER",
              help="Host user to copy (default: $SUDO_USER, else you).")
@click.option("-c", "--config", "config", multiple=True, metavar="KEY=VALUE",
              help="Config key of the box (repeatable), e.g. limits.memory=4GiB.")
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              help="Profile of a new box (repeatable; default: default).")
def up(name: str, image: str, user_name: str | None, config: tuple[str, ...],
       profiles: tuple[str, ...]) -> None:
    """Create or start dev box NAME from IMAGE (default: debian-dev, built on first use).

    The box's user is USER with the same uid, gid and shell, passwordless sudo and the
    public keys in ~/.ssh; their home is mounted at the same path with their ownership on
    both sides; sshd runs and `ssh NAME.lxmgr` reaches it. It starts again with the host.

    \b
    Examples:
      sudo lxmgr dev up dev1
      sudo lxmgr dev up dev1 -c limits.memory=4GiB -c limits.cpu=2
      lxmgr dev up dev2 debian-dev --user alice
    """
    app = get_app()
    if ":" in name:
        app.abort("A dev box mounts your home: it runs on this machine's lxmgr, not a remote")
    user = host_user(user_name)
    if not os.path.isdir(user.home):
        app.abort(f"Home directory {user.home} of user '{user.name}' does not exist")
    keys = read_public_keys(user.home)
    gui, gui_env = devbox.gui_devices(desktop_sockets(user))
    try:
        info = app.query("GET", app.instance_path(name))
    except NotFound:
        info = None
    if info is None:
        _create(app, name, image, user, gui, config, profiles)
        info = app.query("GET", app.instance_path(name))
    else:
        owner = (info.get("config") or {}).get(devbox.USER_KEY)
        if owner and owner != user.name:
            app.abort(f"Dev box '{name}' belongs to user '{owner}'")
        _update(app, name, info, gui, config)
    if info.get("status") != "Running":
        app.echo(f"Starting {name}")
        change_state(app, name, "start")
    _provision(app, name, user, keys, gui_env)
    address = _wait_address(app, name)
    if address is None:
        app.echo(f"Ready: lxmgr dev shell {name} (the box has no IPv4 address for ssh)")
        return
    _wait_port(address, 22)
    host = f"{name}.{_domain(app, info)}"
    target = host if _resolves(host, address) else address
    if not keys:
        app.echo(f"Note: no public key in {user.home}/.ssh: ssh needs one (ssh-keygen), "
                 "then run `lxmgr dev up` again")
    app.echo(f"Ready: ssh {target}" + ("" if target == host else
                                         f"  ({host} does not resolve on this host yet)"))


def _create(app: App, name: str, image: str, user: devbox.DevUser,
            gui: dict[str, dict[str, str]], config: tuple[str, ...],
            profiles: tuple[str, ...]) -> None:
    from lxmgr.cli.commands.init import build_create_body

    app.echo(f"Creating {name}")
    body = build_create_body(image, name, server=app.server, config=config,
                             profiles=profiles)
    body["config"].update(devbox.box_config(user))
    body["devices"].update({**devbox.box_devices(user), **gui})
    app.operate("POST", "/1.0/instances", body=body, label=f"Creating {name}")


def _update(app: App, name: str, info: dict[str, Any], gui: dict[str, dict[str, str]],
            config: tuple[str, ...]) -> None:
    """Give an existing box today's desktop sockets (hot-plugged when it runs) and the
    -c keys (live ones apply at once)."""
    from lxmgr.cli.terminal import parse_assignments

    devices = dict(info.get("devices") or {})
    current = {k: v for k, v in devices.items() if k.startswith(devbox.GUI_PREFIX)}
    changes = parse_assignments(config, "config") if config else {}
    old = info.get("config") or {}
    if current == gui and all(old.get(k) == v for k, v in changes.items()):
        return
    devices = {k: v for k, v in devices.items() if not k.startswith(devbox.GUI_PREFIX)}
    body = {"config": {**old, **changes}, "devices": {**devices, **gui},
            "profiles": info.get("profiles") or [], "description": info.get("description", "")}
    body["config"] = {k: v for k, v in body["config"].items() if not k.startswith("volatile.")}
    app.operate("PUT", app.instance_path(name), body=body, label=f"Updating {name}")


def _provision(app: App, name: str, user: devbox.DevUser, keys: str,
               gui_env: dict[str, str]) -> None:
    """Run the account script as root in the box; abort with its last error line."""
    from lxmgr.client.exec import build_exec_body, run_exec

    body = build_exec_body(["sh", "-c", devbox.provision_script(user, gui_env)])
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out:
        inp.write(keys.encode())
        inp.seek(0)
        status = run_exec(app.client, name, body, stdin_fd=inp.fileno(),
                          stdout_fd=out.fileno(), stderr_fd=out.fileno())
        out.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
    for line in lines:
        if line.startswith("lxmgr: "):
            app.echo(f"Note: {line.removeprefix('lxmgr: ')}")
    if status != 0:
        app.abort(f"Could not set up user '{user.name}' in {name}: "
                  f"{lines[-1] if lines else f'exit status {status}'}")


def _wait_address(app: App, name: str) -> str | None:
    """The box's first global IPv4 address (None when it has no NIC or gets none)."""
    deadline = time.monotonic() + WAIT_ADDRESS
    while True:
        state = app.query("GET", app.instance_path(name, "state"))
        network = state.get("network") or {}
        nics = {k: v for k, v in network.items() if k != "lo"}
        if not nics:
            return None
        for nic in nics.values():
            for addr in nic.get("addresses") or []:
                if addr.get("family") == "inet" and addr.get("scope") == "global":
                    return str(addr["address"])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def _wait_port(address: str, port: int) -> None:
    deadline = time.monotonic() + WAIT_SSH
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)


def _domain(app: App, info: dict[str, Any]) -> str:
    """dns.domain of the network the box's first NIC is on (LXD's default: lxd; ours: lxmgr)."""
    devices = info.get("expanded_devices") or info.get("devices") or {}
    for _, dev in sorted(devices.items()):
        if dev.get("type") == "nic" and dev.get("network"):
            try:
                net = app.query("GET", f"/1.0/networks/{dev['network']}")
                return str((net.get("config") or {}).get("dns.domain") or "lxmgr")
            except NotFound:
                break
    return "lxmgr"


def _resolves(host: str, address: str) -> bool:
    deadline = time.monotonic() + WAIT_NAME
    while True:
        try:
            if address in {info[4][0] for info in socket.getaddrinfo(host, 22,
                                                                     socket.AF_INET)}:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _box_user(app: App, name: str, user_name: str | None) -> str:
    if user_name:
        return user_name
    config = app.query("GET", app.instance_path(name)).get("config") or {}
    return str(config.get(devbox.USER_KEY) or host_user(None).name)


@dev.command("shell")
@click.argument("name")
@click.option("--user", "user_name", metavar="USER", help="Log in as USER (default: the box's).")
def shell(name: str, user_name: str | None) -> None:
    """Open a login shell in dev box NAME as its user (`exec NAME -- su -l USER`).

    \b
    Examples:
      lxmgr dev shell dev1
    """
    app = get_app()
    user = _box_user(app, name, user_name)
    status = run_command(app, name, ["su", "-l", user], interactive=want_pty(False, False))
    raise click.exceptions.Exit(status)


@dev.command("down")
@click.argument("name")
@click.option("--rm", "remove", is_flag=True, help="Delete the box too (your home stays).")
def down(name: str, remove: bool) -> None:
    """Stop dev box NAME (--rm: and delete it; the mounted home is never touched).

    \b
    Examples:
      lxmgr dev down dev1
      lxmgr dev down dev1 --rm
    """
    app = get_app()
    info = app.query("GET", app.instance_path(name))
    if info.get("status") != "Stopped":
        change_state(app, name, "stop")
    if remove:
        app.operate("DELETE", app.instance_path(name), label=f"Deleting {name}")
