"""`lxmgr config device ...` and `lxmgr profile device ...`: one implementation, two owners.

The owners and the add/remove/store logic are click-free in lxmgr.cli.device_edit (the
fast path runs `config device add|remove` without click). Imports no other command module
(config and profile import this one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import click

from lxmgr.cli import device_edit
from lxmgr.cli.app import App
from lxmgr.cli.device_edit import DeviceOwner
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import parse_assignments, render_yaml


def _missing(owner: DeviceOwner, name: str, device: str) -> NoReturn:
    device_edit.missing(get_app(), owner, name, device)


def _editable(owner: DeviceOwner, obj: dict[str, Any], name: str, device: str) -> dict[str, str]:
    return device_edit.editable(get_app(), owner, obj, name, device)


def _store(owner: DeviceOwner, app: App, name: str, obj: dict[str, Any], etag: str,
           device: str, dev: dict[str, str] | None) -> None:
    device_edit.store(owner, app, name, obj, etag, device, dev)


def _help(owner: DeviceOwner, summary: str, *examples: str) -> str:
    lines = [summary, "", "\b", "Examples:"]
    lines += [f"  lxmgr {owner.parent} device {e.format(n=owner.example)}" for e in examples]
    return "\n".join(lines)


def device_group(owner: DeviceOwner) -> click.Group:
    """The `device` group for one owner kind."""
    group = click.Group("device", help=_help(
        owner, f"Manage the devices of {owner.a_noun} (NICs, disks, proxies).",
        "add {n} eth1 nic network=lxmgrbr0 name=eth1", "list {n}", "set {n} eth1 mtu=1400",
        "remove {n} eth1"))
    name_arg = click.argument("name", metavar=owner.noun.upper(), type=ON_SERVER,
                              shell_complete=owner.complete)
    for factory in (_add, _remove, _list, _show, _get, _set, _unset):
        group.add_command(factory(owner, name_arg))
    if owner.expanded:
        group.add_command(_override(owner, name_arg))
    return group


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def _add(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("add", help=_help(
        owner, f"Add a device to {owner.a_noun}.\n\nTYPE is disk, nic, proxy, unix-char, "
               "unix-block, gpu or none; "
               "KEY=VALUE are its keys, as in LXD. A disk mounts a host directory or file "
               "(source) at path, at once in a running instance; shift=true shows host owners "
               "inside (idmapped), readonly=true, required=false (skip a missing source), "
               "recursive=true (submounts too).",
        "add {n} eth1 nic network=lxmgrbr0 name=eth1",
        "add {n} http proxy listen=tcp:0.0.0.0:8080 connect=tcp:127.0.0.1:80",
        "add {n} code disk source=$HOME/code path=/code shift=true",
        "add {n} data disk pool=default source=data path=/srv/data",
        "add {n} fuse unix-char source=/dev/fuse"))
    @name_arg
    @click.argument("device")
    @click.argument("type_", metavar="TYPE")
    @click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
    def add(name: str, device: str, type_: str, assignments: tuple[str, ...]) -> None:
        device_edit.add(get_app(), owner, name, device, type_, assignments)

    return add


def _remove(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("remove", help=_help(owner, f"Remove devices from {owner.a_noun}.",
                                        "remove {n} eth1"))
    @name_arg
    @click.argument("devices", nargs=-1, required=True, metavar="DEVICE...")
    def remove(name: str, devices: tuple[str, ...]) -> None:
        device_edit.remove(get_app(), owner, name, devices)

    return remove


def _list(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("list", help=_help(owner, f"List the devices of {owner.a_noun}.",
                                      "list {n}"))
    @name_arg
    def list_(name: str) -> None:
        app = get_app()
        obj, _ = owner.load(app, name)
        for device in sorted(obj.get("devices") or {}):
            app.echo(device)

    return list_


def _show(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("show", help=_help(owner, f"Show the devices of {owner.a_noun} as YAML.",
                                      "show {n}"))
    @name_arg
    def show(name: str) -> None:
        app = get_app()
        obj, _ = owner.load(app, name)
        app.echo(render_yaml(dict(sorted((obj.get("devices") or {}).items()))))

    return show


def _get(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("get", help=_help(owner, "Print one device key (empty when unset).",
                                     "get {n} eth0 network"))
    @name_arg
    @click.argument("device")
    @click.argument("key")
    def get(name: str, device: str, key: str) -> None:
        app = get_app()
        obj, _ = owner.load(app, name)
        app.echo(str(_editable(owner, obj, name, device).get(key, "")))

    return get


def _set(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("set", help=_help(
        owner, "Set device keys (KEY=VALUE..., or KEY VALUE).",
        "set {n} eth1 ipv4.address=10.99.0.10", "set {n} eth1 limits.ingress 10Mbit"))
    @name_arg
    @click.argument("device")
    @click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
    def set_(name: str, device: str, assignments: tuple[str, ...]) -> None:
        app = get_app()
        obj, etag = owner.load(app, name)
        dev = _editable(owner, obj, name, device)
        dev.update(parse_assignments(assignments, "device key"))
        _store(owner, app, name, obj, etag, device, dev)

    return set_


def _unset(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("unset", help=_help(owner, "Remove device keys.",
                                       "unset {n} eth1 limits.ingress"))
    @name_arg
    @click.argument("device")
    @click.argument("keys", nargs=-1, required=True, metavar="KEY...")
    def unset(name: str, device: str, keys: tuple[str, ...]) -> None:
        app = get_app()
        obj, etag = owner.load(app, name)
        dev = _editable(owner, obj, name, device)
        for key in keys:
            if key == "type" or key not in dev:
                app.abort(f"Can't unset key '{key}' of device '{device}', "
                          + ("it's the device type" if key == "type" else "it's not set"))
            del dev[key]
        _store(owner, app, name, obj, etag, device, dev)

    return unset


def _override(owner: DeviceOwner, name_arg: Decorator) -> click.Command:
    @click.command("override", help=_help(
        owner, "Copy a profile's device into the instance to change it there.",
        "override {n} eth0 ipv4.address=10.99.0.10"))
    @name_arg
    @click.argument("device")
    @click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
    def override(name: str, device: str, assignments: tuple[str, ...]) -> None:
        app = get_app()
        obj, etag = owner.load(app, name)
        if device in (obj.get("devices") or {}):
            app.abort(f"Device '{device}' is already local to {owner.noun} '{name}'")
        dev = _editable(owner, obj, name, device)
        dev.update(parse_assignments(assignments, "device key") if assignments else {})
        _store(owner, app, name, obj, etag, device, dev)
        app.echo(f"Device {device} overridden for {name}")

    return override
