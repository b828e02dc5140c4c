"""Adding and removing devices of an instance or a profile, click-free: the `device` commands
(lxmgr.cli.commands.device) and the fast path (lxmgr.cli.fast: `config device add|remove`,
what a script hot-plugging disks runs) share it.

A DeviceOwner (instance or profile) says how to load its object and how to write it back;
every change is a GET then a PUT of the whole object with If-Match, because PATCH merges
the devices map and so could never remove a device. New and changed devices are checked
with lxmgr.model.devices before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # no typing import at run time (lxmgr.cli.fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from lxmgr.cli.app import App

    Loader = Callable[[App, str], tuple[dict[str, Any], str]]
    Saver = Callable[[App, str, dict[str, Any], str], None]


@dataclass(frozen=True)
class DeviceOwner:
    """What carries devices: how to read and write it, and how to name it in messages."""

    noun: str  # "instance" | "profile"
    parent: str  # the verb above `device` ("config" | "profile"), for examples
    example: str  # an owner name for examples
    load: Loader  # (object, etag)
    save: Saver  # writes object (with its changed "devices") back, If-Match etag
    complete: Callable[..., Any] | None = None  # shell completion of owner names
    expanded: bool = False  # instances also see the devices their profiles bring

    @property
    def a_noun(self) -> str:
        return f"{'an' if self.noun[0] in 'aeiou' else 'a'} {self.noun}"


def instance_owner() -> DeviceOwner:
    """Instances (`lxmgr config device`)."""
    from lxmgr.cli.objects import get_instance, save_instance

    return DeviceOwner(noun="instance", parent="config", example="web1", load=get_instance,
                       save=save_instance, expanded=True)


def validated(owner: DeviceOwner, name: str, device: str, dev: dict[str, str]) -> dict[str, str]:
    from lxmgr.errors import InvalidConfig
    from lxmgr.model.devices import validate_device

    try:
        return validate_device(device, dev)
    except InvalidConfig as err:
        raise InvalidConfig(f"{err} (on {owner.noun} '{name}')") from err


def missing(app: App, owner: DeviceOwner, name: str, device: str) -> NoReturn:
    app.abort(f"Device '{device}' doesn't exist on {owner.noun} '{name}'")


def editable(app: App, owner: DeviceOwner, obj: dict[str, Any], name: str,
             device: str) -> dict[str, str]:
    """A copy of a local device, or of a profile's device to override (as lxc does)."""
    devices = obj.get("devices") or {}
    inherited = (obj.get("expanded_devices") or {}) if owner.expanded else {}
    if device in devices:
        return dict(devices[device])
    if device in inherited:
        return dict(inherited[device])
    missing(app, owner, name, device)


def store(owner: DeviceOwner, app: App, name: str, obj: dict[str, Any], etag: str,
          device: str, dev: dict[str, str] | None) -> None:
    """Put dev under device (None removes it) and write the owner back."""
    devices = dict(obj.get("devices") or {})
    if dev is None:
        devices.pop(device, None)
    else:
        devices[device] = validated(owner, name, device, dev)
    owner.save(app, name, {**obj, "devices": devices}, etag)


def add(app: App, owner: DeviceOwner, name: str, device: str, type_: str,
        assignments: tuple[str, ...]) -> None:
    """`device add NAME DEVICE TYPE [KEY=VALUE]...`"""
    from lxmgr.cli.terminal import parse_assignments

    obj, etag = owner.load(app, name)
    if device in (obj.get("devices") or {}):
        app.abort(f"Device '{device}' already exists on {owner.noun} '{name}'")
    values = parse_assignments(assignments, "device key") if assignments else {}
    store(owner, app, name, obj, etag, device, {**values, "type": type_})
    app.echo(f"Device {device} added to {name}")


def remove(app: App, owner: DeviceOwner, name: str, devices: tuple[str, ...]) -> None:
    """`device remove NAME DEVICE...`"""
    obj, etag = owner.load(app, name)
    local = dict(obj.get("devices") or {})
    for device in devices:
        if device in local:
            del local[device]
        elif owner.expanded and device in (obj.get("expanded_devices") or {}):
            app.abort(f"Device '{device}' comes from a profile of {owner.noun} '{name}': "
                      f"override it (lxmgr {owner.parent} device override {name} {device})"
                      " or change the profile")
        else:
            missing(app, owner, name, device)
    owner.save(app, name, {**obj, "devices": local}, etag)
    for device in devices:
        app.echo(f"Device {device} removed from {name}")
