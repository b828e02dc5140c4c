"""`lxmgr config show|get|set|unset|edit`: an instance's local config (`lxc config`), and
the server's (a KEY with a dot where the instance NAME would be, as lxc reads it)."""

from __future__ import annotations

import sys

import click

from lxmgr.cli.app import App
from lxmgr.cli.commands.device import DeviceOwner, device_group
from lxmgr.cli.commands.trust import trust
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.objects import PUT_FIELDS, get_object, instance_put, put_object
from lxmgr.cli.objects import get_instance as _get
from lxmgr.cli.objects import save_instance as _save
from lxmgr.cli.options import ON_SERVER, RemoteRef, get_app
from lxmgr.cli.terminal import parse_assignments, parse_yaml, render_yaml

# `config set NAME KEY=VALUE` or `config set KEY=VALUE` (server key, its value may hold ':')
SERVER_OR_KEY = RemoteRef(filters=True)


def edit_text(app: App, text: str, what: str) -> str:
    """The edited document: from stdin when it is not a terminal, else $EDITOR."""
    if not sys.stdin.isatty():
        return sys.stdin.read()
    edited = click.edit(text, extension=".yaml")
    if edited is None:
        app.abort(f"No changes to {what}")
    return edited


def unset_keys(app: App, config: dict[str, str], keys: tuple[str, ...]) -> None:
    """Remove keys from config (in place); abort on the first that is not set, as lxc does."""
    for key in keys:
        if key not in config:
            app.abort(f"Can't unset key '{key}', it's not currently set")
        del config[key]


@click.group()
def config() -> None:
    """Show and change instance config.

    \b
    Examples:
      lxmgr config show web1 --expanded
      lxmgr config set web1 limits.memory=1GiB limits.cpu=2
      lxmgr config get web1 limits.memory
      lxmgr config unset web1 limits.cpu
      lxmgr config edit web1
      lxmgr config device add web1 eth1 nic network=lxmgrbr0 name=eth1
    """


def is_server_key(arg: str) -> bool:
    """Instance names have no '.', every config key has one: `config set images.x 6` is
    the server's config, as in lxc."""
    return "." in arg.partition("=")[0]


def _server_config(app: App) -> dict[str, str]:
    return dict((app.query("GET", "/1.0") or {}).get("config") or {})


@config.command()
@click.argument("name", required=False, type=ON_SERVER, shell_complete=complete_instances)
@click.option("--expanded", is_flag=True, help="Include what profiles contribute.")
def show(name: str | None, expanded: bool) -> None:
    """Show an instance's config as YAML (the server's without NAME).

    \b
    Examples:
      lxmgr config show web1
      lxmgr config show web1 --expanded
      lxmgr config show
    """
    app = get_app()
    if not name:
        app.echo(render_yaml({"config": _server_config(app)}))
        return
    inst, _ = _get(app, name)
    app.echo(render_yaml(instance_put(inst, expanded)))


@config.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("key", required=False)
@click.option("--expanded", is_flag=True, help="Read the expanded (profile-merged) value.")
def get(name: str, key: str | None, expanded: bool) -> None:
    """Print one config value (empty when unset); a KEY alone is the server's.

    \b
    Examples:
      lxmgr config get web1 limits.memory
      lxmgr config get images.auto_update_interval
    """
    app = get_app()
    if not name and key:
        name, key = key, None
    if key is None:
        if not is_server_key(name):
            app.abort(f"Missing the key to read from '{name}'")
        app.echo(_server_config(app).get(name, ""))
        return
    inst, _ = _get(app, name)
    values = inst.get("expanded_config" if expanded else "config") or {}
    app.echo(str(values.get(key, "")))


@config.command("set")
@click.argument("name", metavar="[[REMOTE:]NAME]", type=SERVER_OR_KEY,
                shell_complete=complete_instances)
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set config keys (KEY=VALUE..., or KEY VALUE); without NAME, the server's.

    \b
    Examples:
      lxmgr config set web1 limits.memory=1GiB
      lxmgr config set web1 limits.cpu 2
      lxmgr config set images.auto_update_interval 12
      lxmgr config set prod: core.https_address :8443
    """
    app = get_app()
    if not name or is_server_key(name):
        values = parse_assignments((name, *assignments) if name else assignments, "config")
        app.query("PATCH", "/1.0", body={"config": values})
        return
    if not assignments:
        app.abort(f"Missing KEY=VALUE to set on '{name}'")
    values = parse_assignments(assignments, "config")
    app.operate("PATCH", app.instance_path(name), body={"config": values})


@config.command()
@click.argument("name", metavar="[[REMOTE:]NAME]", type=ON_SERVER,
                shell_complete=complete_instances)
@click.argument("keys", nargs=-1, metavar="KEY...")
def unset(name: str, keys: tuple[str, ...]) -> None:
    """Remove config keys; without NAME, the server's.

    \b
    Examples:
      lxmgr config unset web1 limits.memory
      lxmgr config unset images.auto_update_interval
    """
    app = get_app()
    if not name or is_server_key(name):
        config = _server_config(app)
        for key in (name, *keys) if name else keys:
            config.pop(key, None)
        app.query("PUT", "/1.0", body={"config": config})
        return
    if not keys:
        app.abort(f"Missing the keys to unset on '{name}'")
    inst, etag = _get(app, name)
    put = instance_put(inst)
    put["config"] = dict(put.get("config") or {})
    unset_keys(app, put["config"], keys)
    put_object(app, app.instance_path(name), put, etag)


@config.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
def edit(name: str) -> None:
    """Edit an instance's config as YAML in $EDITOR (or read it from stdin).

    \b
    Examples:
      lxmgr config edit web1
      lxmgr config show web1 > web1.yaml; lxmgr config edit web1 < web1.yaml
    """
    app = get_app()
    inst, etag = _get(app, name)
    text = edit_text(app, render_yaml(instance_put(inst)) + "\n", f"instance '{name}'")
    data = parse_yaml(text, f"instance '{name}'")
    if not isinstance(data, dict):
        app.abort(f"Invalid config for instance '{name}': expected a mapping")
    put_object(app, app.instance_path(name),
               {k: v for k, v in data.items() if k in PUT_FIELDS}, etag)


__all__ = ["PUT_FIELDS", "edit_text", "get_object", "instance_put", "put_object", "unset_keys"]

config.add_command(device_group(DeviceOwner(
    noun="instance", parent="config", example="web1", load=_get, save=_save,
    complete=complete_instances, expanded=True)))


config.add_command(trust)
