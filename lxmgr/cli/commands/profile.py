"""`lxmgr profile ...`: profile CRUD and assigning profiles to instances (`lxc profile`)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.app import App
from lxmgr.cli.commands.config import edit_text, get_object, put_object, unset_keys
from lxmgr.cli.commands.device import DeviceOwner, device_group
from lxmgr.cli.completion import complete_instances, complete_profiles
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import parse_assignments, render, render_yaml

PROFILE_FIELDS = ("name", "description", "config", "devices")


def profile_path(name: str) -> str:
    return f"/1.0/profiles/{quote(name, safe='')}"


def _get(app: App, name: str) -> tuple[dict[str, Any], str]:
    return get_object(app, profile_path(name))


def _content(profile: dict[str, Any]) -> dict[str, Any]:
    """The ProfilePut part (description, config, devices)."""
    return {"description": profile.get("description", ""),
            "config": dict(profile.get("config") or {}),
            "devices": dict(profile.get("devices") or {})}


def parse_profile_text(text: str, name: str) -> dict[str, Any]:
    """Validated ProfilePut fields from YAML (lxmgr.model.profile rules)."""
    from lxmgr.model.profile import parse_profile

    return _content(parse_profile(text, name_hint=name).to_dict())


def _instance_profiles(app: App, instance: str) -> list[str]:
    return list(app.query("GET", app.instance_path(instance)).get("profiles") or [])


def _set_instance_profiles(app: App, instance: str, profiles: list[str]) -> None:
    app.operate("PATCH", app.instance_path(instance), body={"profiles": profiles})


@click.group()
def profile() -> None:
    """Manage profiles: reusable sets of config keys and devices.

    \b
    Examples:
      lxmgr profile list
      lxmgr profile create web --description "Web servers"
      lxmgr profile set web limits.memory=1GiB
      lxmgr profile add web1 web
      lxmgr profile edit web
      lxmgr profile device add web eth0 nic network=lxmgrbr0 name=eth0
    """


@profile.command("list")
@format_option
def list_(fmt: str) -> None:
    """List profiles.

    \b
    Examples:
      lxmgr profile list
      lxmgr profile list --format yaml
    """
    app = get_app()
    profiles = sorted(app.query("GET", "/1.0/profiles", params={"recursion": 1}) or [],
                      key=lambda p: str(p.get("name", "")))
    rows = [[str(p.get("name", "")), str(p.get("description", "")),
             str(len(p.get("used_by") or []))] for p in profiles]
    app.echo(render(fmt, ["NAME", "DESCRIPTION", "USED BY"], rows, profiles))


@profile.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_profiles)
def show(name: str) -> None:
    """Show a profile as YAML.

    \b
    Examples:
      lxmgr profile show default
    """
    app = get_app()
    data, _ = _get(app, name)
    shown = {key: data[key] for key in (*PROFILE_FIELDS, "used_by") if key in data}
    app.echo(render_yaml(shown))


@profile.command()
@click.argument("name", type=ON_SERVER)
@click.option("-d", "--description", default="", help="Profile description.")
def create(name: str, description: str) -> None:
    """Create an empty profile (or one read as YAML from stdin).

    \b
    Examples:
      lxmgr profile create web --description "Web servers"
      lxmgr profile create web < web.yaml
    """
    app = get_app()
    body: dict[str, Any] = {"name": name, "description": description, "config": {},
                            "devices": {}}
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.strip():
            body.update(parse_profile_text(text, name))
            body["description"] = description or body["description"]
    app.query("POST", "/1.0/profiles", body=body)
    app.echo(f"Profile {name} created")


@profile.command()
@click.argument("source", type=ON_SERVER, shell_complete=complete_profiles)
@click.argument("target")
def copy(source: str, target: str) -> None:
    """Copy profile SOURCE to a new profile TARGET.

    \b
    Examples:
      lxmgr profile copy default default-backup
    """
    app = get_app()
    data, _ = _get(app, source)
    app.query("POST", "/1.0/profiles", body={"name": target, **_content(data)})


@profile.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_profiles)
def edit(name: str) -> None:
    """Edit a profile as YAML in $EDITOR (or read it from stdin).

    \b
    Examples:
      lxmgr profile edit web
      lxmgr profile edit web < web.yaml
    """
    app = get_app()
    data, etag = _get(app, name)
    shown = {key: data[key] for key in PROFILE_FIELDS if key in data}
    text = edit_text(app, render_yaml(shown) + "\n", f"profile '{name}'")
    put_object(app, profile_path(name), parse_profile_text(text, name), etag)


@profile.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_profiles)
def delete(names: tuple[str, ...]) -> None:
    """Delete profiles (not while an instance uses them).

    \b
    Examples:
      lxmgr profile delete web
    """
    app = get_app()
    for name in names:
        app.query("DELETE", profile_path(name))
        app.echo(f"Profile {name} deleted")


@profile.command()
@click.argument("instance", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("profiles", metavar="PROFILE[,PROFILE...]")
def assign(instance: str, profiles: str) -> None:
    """Set the profiles of an instance (comma-separated, in order; '' for none).

    \b
    Examples:
      lxmgr profile assign web1 default,web
      lxmgr profile assign web1 ''
    """
    app = get_app()
    names = [p for p in profiles.split(",") if p]
    _set_instance_profiles(app, instance, names)
    app.echo(f"Profiles {', '.join(names)} applied to {instance}" if names
             else f"All profiles removed from {instance}")


@profile.command()
@click.argument("instance", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("name", shell_complete=complete_profiles)
def add(instance: str, name: str) -> None:
    """Append a profile to an instance's profiles.

    \b
    Examples:
      lxmgr profile add web1 web
    """
    app = get_app()
    current = _instance_profiles(app, instance)
    if name in current:
        app.abort(f"Profile '{name}' is already applied to '{instance}'")
    _set_instance_profiles(app, instance, [*current, name])
    app.echo(f"Profile {name} added to {instance}")


@profile.command()
@click.argument("instance", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("name", shell_complete=complete_profiles)
def remove(instance: str, name: str) -> None:
    """Remove a profile from an instance.

    \b
    Examples:
      lxmgr profile remove web1 web
    """
    app = get_app()
    current = _instance_profiles(app, instance)
    if name not in current:
        app.abort(f"Profile '{name}' is not applied to '{instance}'")
    _set_instance_profiles(app, instance, [p for p in current if p != name])
    app.echo(f"Profile {name} removed from {instance}")


@profile.command("set")
@click.argument("name", type=ON_SERVER, shell_complete=complete_profiles)
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set profile config keys (KEY=VALUE..., or KEY VALUE).

    \b
    Examples:
      lxmgr profile set web limits.memory=1GiB limits.cpu=2
    """
    app = get_app()
    values = parse_assignments(assignments, "config")
    app.query("PATCH", profile_path(name), body={"config": values})


@profile.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_profiles)
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def unset(name: str, keys: tuple[str, ...]) -> None:
    """Remove profile config keys.

    \b
    Examples:
      lxmgr profile unset web limits.memory
    """
    app = get_app()
    data, etag = _get(app, name)
    content = _content(data)
    unset_keys(app, content["config"], keys)
    put_object(app, profile_path(name), content, etag)


@profile.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_profiles)
@click.argument("key")
def get(name: str, key: str) -> None:
    """Print one profile config value (empty when unset).

    \b
    Examples:
      lxmgr profile get default limits.memory
    """
    data, _ = _get(get_app(), name)
    get_app().echo(str((data.get("config") or {}).get(key, "")))


def _save(app: App, name: str, data: dict[str, Any], etag: str) -> None:
    put_object(app, profile_path(name), _content(data), etag)


profile.add_command(device_group(DeviceOwner(
    noun="profile", parent="profile", example="web", load=_get, save=_save,
    complete=complete_profiles)))
