"""`lxmgr storage volume ...`: custom storage volumes (`lxc storage volume`): create, list,
show, get, set, unset, edit, rename, delete, snapshot, restore, copy, and attach/detach as a
disk device of an instance. Talks to /1.0/storage-pools/POOL/volumes and /1.0/instances only;
the daemon validates volume config.

A VOLUME argument may name a snapshot as VOLUME/SNAPSHOT where lxc takes one (show, rename,
delete, copy's source), and may carry lxc's type prefix `custom/`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.app import App
from lxmgr.cli.commands.config import edit_text, get_object, instance_put, put_object, unset_keys
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import parse_assignments, parse_yaml, render, render_yaml

LIST_HEADERS = ["TYPE", "NAME", "DESCRIPTION", "CONTENT-TYPE", "USED BY"]
OTHER_TYPES = ("container", "virtual-machine", "image")  # lxc's prefixes we don't serve here


def volume_path(pool: str, volume: str = "", *rest: str) -> str:
    base = f"/1.0/storage-pools/{quote(pool, safe='')}/volumes/custom"
    parts = [base, quote(volume, safe="")] if volume else [base]
    return "/".join([*parts, *(quote(r, safe="") for r in rest)])


def parse_volume(app: App, ref: str) -> tuple[str, str | None]:
    """[custom/]VOLUME[/SNAPSHOT] -> (volume, snapshot), as lxc's parseVolume."""
    kind, sep, rest = ref.partition("/")
    if sep and kind in OTHER_TYPES:
        app.abort(f"Only custom storage volumes are handled here, not '{ref}' ({kind})")
    if sep and kind == "custom":
        ref = rest
    volume, _, snapshot = ref.partition("/")
    if not volume or "/" in snapshot:
        app.abort(f"Invalid storage volume '{ref}': expected VOLUME or VOLUME/SNAPSHOT")
    return volume, snapshot or None


def _only_volume(app: App, ref: str) -> str:
    volume, snapshot = parse_volume(app, ref)
    if snapshot:
        app.abort(f"'{ref}' is a snapshot: name a storage volume")
    return volume


def _type_of(vol: dict[str, Any]) -> str:
    kind = str(vol.get("type", ""))
    return f"{kind} (snapshot)" if "/" in str(vol.get("name", "")) else kind


def parse_volume_text(app: App, text: str, what: str) -> dict[str, Any]:
    """description/config from YAML typed by a user; config values coerced to strings."""
    from lxmgr.model.config import to_config_value

    data = parse_yaml(text, what) or {}
    if not isinstance(data, dict) or not isinstance(data.get("config") or {}, dict):
        app.abort(f"Invalid YAML for {what}: expected a mapping with a 'config' mapping")
    return {"description": str(data.get("description") or ""),
            "config": {str(k): to_config_value(v) for k, v in
                       (data.get("config") or {}).items()}}


@click.group()
def volume() -> None:
    """Manage custom storage volumes: filesystems in a pool that instances mount.

    \b
    Examples:
      lxmgr storage volume create default data
      lxmgr storage volume attach default data web1 /srv/data
      lxmgr storage volume attach default data web2 /srv/data
      lxmgr storage volume snapshot default data
      lxmgr storage volume list default
    """


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name")
@click.argument("config", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-d", "--description", default="", help="Volume description.")
@click.option("--type", "content_type", type=click.Choice(["filesystem"]), default="filesystem",
              show_default=True, help="Content type (block volumes are for VMs: not here).")
def create(pool: str, name: str, config: tuple[str, ...], description: str,
           content_type: str) -> None:
    """Create an empty custom volume (`size=` is a quota on btrfs pools).

    \b
    Examples:
      lxmgr storage volume create default data
      lxmgr storage volume create fast cache size=2GiB -d "build cache"
    """
    app = get_app()
    body = {"name": name, "type": "custom", "content_type": content_type,
            "description": description,
            "config": parse_assignments(config, "config") if config else {}}
    app.query("POST", volume_path(pool), body=body)
    app.echo(f"Storage volume {name} created")


@volume.command("list")
@click.argument("pool", type=ON_SERVER)
@format_option
@click.option("--all-projects", is_flag=True,
              help="Volumes of every project (a PROJECT column comes first).")
def list_(pool: str, fmt: str, all_projects: bool) -> None:
    """List a pool's volumes (instances' and custom ones, with their snapshots) in the
    current project, or --project's.

    \b
    Examples:
      lxmgr storage volume list default
      lxmgr storage volume list default --format yaml
      lxmgr storage volume list default --all-projects
    """
    from lxmgr.cli.listing import ALL_PROJECTS_CONFLICT

    app = get_app()
    params: dict[str, Any] = {"recursion": 1}
    if all_projects:
        if app.project_override:
            app.abort(ALL_PROJECTS_CONFLICT)
        params["all-projects"] = True
    vols = app.query("GET", f"/1.0/storage-pools/{quote(pool, safe='')}/volumes",
                     params=params) or []
    rows = [[_type_of(v), str(v.get("name", "")), str(v.get("description", "")),
             str(v.get("content_type", "")), str(len(v.get("used_by") or []))] for v in vols]
    headers = LIST_HEADERS
    if all_projects:  # lxc's column e, first as in its default columns (etndcuL)
        headers = ["PROJECT", *LIST_HEADERS]
        rows = [[str(v.get("project", "")), *row] for v, row in zip(vols, rows, strict=True)]
    app.echo(render(fmt, headers, rows, vols))


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME[/SNAPSHOT]")
def show(pool: str, name: str) -> None:
    """Show a custom volume (or a snapshot of one) as YAML.

    \b
    Examples:
      lxmgr storage volume show default data
      lxmgr storage volume show default data/snap0
    """
    app = get_app()
    vol, snap = parse_volume(app, name)
    path = volume_path(pool, vol, "snapshots", snap) if snap else volume_path(pool, vol)
    app.echo(render_yaml(app.query("GET", path)))


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("key")
def get(pool: str, name: str, key: str) -> None:
    """Print one config value of a custom volume (empty when unset).

    \b
    Examples:
      lxmgr storage volume get fast cache size
    """
    app = get_app()
    vol, _ = get_object(app, volume_path(pool, _only_volume(app, name)))
    app.echo(str((vol.get("config") or {}).get(key, "")))


@volume.command("set")
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(pool: str, name: str, assignments: tuple[str, ...]) -> None:
    """Set config keys of a custom volume (KEY=VALUE..., or KEY VALUE).

    \b
    Examples:
      lxmgr storage volume set fast cache size=4GiB
      lxmgr storage volume set default data user.owner alice
    """
    app = get_app()
    values = parse_assignments(assignments, "config")
    app.query("PATCH", volume_path(pool, _only_volume(app, name)), body={"config": values})


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def unset(pool: str, name: str, keys: tuple[str, ...]) -> None:
    """Remove config keys of a custom volume.

    \b
    Examples:
      lxmgr storage volume unset fast cache size
    """
    app = get_app()
    path = volume_path(pool, _only_volume(app, name))
    vol, etag = get_object(app, path)
    config = dict(vol.get("config") or {})
    unset_keys(app, config, keys)
    put_object(app, path, {"description": vol.get("description", ""), "config": config}, etag)


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
def edit(pool: str, name: str) -> None:
    """Edit a custom volume's description and config as YAML in $EDITOR (or from stdin).

    \b
    Examples:
      lxmgr storage volume edit default data
      lxmgr storage volume show default data > v.yaml
      lxmgr storage volume edit default data < v.yaml
    """
    app = get_app()
    volume_name = _only_volume(app, name)
    path = volume_path(pool, volume_name)
    vol, etag = get_object(app, path)
    shown = {key: vol[key] for key in ("name", "description", "config") if key in vol}
    what = f"storage volume '{volume_name}'"
    text = edit_text(app, render_yaml(shown) + "\n", what)
    put_object(app, path, parse_volume_text(app, text, what), etag)


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME[/SNAPSHOT]")
@click.argument("new_name", metavar="NEW[/NEW_SNAPSHOT]")
def rename(pool: str, name: str, new_name: str) -> None:
    """Rename a custom volume (its instances' and profiles' disks follow) or a snapshot.

    \b
    Examples:
      lxmgr storage volume rename default data shared
      lxmgr storage volume rename default data/snap0 data/before-upgrade
    """
    app = get_app()
    vol, snap = parse_volume(app, name)
    new_vol, new_snap = parse_volume(app, new_name)
    if snap is None and new_snap is None:
        app.query("POST", volume_path(pool, vol), body={"name": new_vol})
    elif snap and new_snap and new_vol == vol:
        app.operate("POST", volume_path(pool, vol, "snapshots", snap), body={"name": new_snap})
    else:
        app.abort(f"Can't rename '{name}' to '{new_name}': rename a volume to a volume, or a "
                  "snapshot to a snapshot of the same volume")
    app.echo(f"Renamed storage volume from \"{name}\" to \"{new_name}\"")


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("names", nargs=-1, required=True, metavar="VOLUME[/SNAPSHOT]...")
def delete(pool: str, names: tuple[str, ...]) -> None:
    """Delete custom volumes no instance or profile uses (with their snapshots), or
    snapshots.

    \b
    Examples:
      lxmgr storage volume delete default data
      lxmgr storage volume delete default data/snap0
    """
    app = get_app()
    for name in names:
        vol, snap = parse_volume(app, name)
        if snap:
            app.operate("DELETE", volume_path(pool, vol, "snapshots", snap))
        else:
            app.query("DELETE", volume_path(pool, vol))
        app.echo(f"Storage volume {name} deleted")


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("snapshot", required=False)
def snapshot(pool: str, name: str, snapshot: str | None) -> None:
    """Take a read-only snapshot of a custom volume (named snap0, snap1... by default).

    \b
    Examples:
      lxmgr storage volume snapshot default data
      lxmgr storage volume snapshot default data before-upgrade
    """
    app = get_app()
    vol = _only_volume(app, name)
    body = {"name": snapshot} if snapshot else {}
    op = app.operate("POST", volume_path(pool, vol, "snapshots"), body=body)
    taken = (op.get("metadata") or {}).get("name") or snapshot
    app.echo(f"Snapshot {vol}/{taken} created")


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("snapshot")
def restore(pool: str, name: str, snapshot: str) -> None:
    """Make a custom volume's content its snapshot's (no running instance may mount it).

    \b
    Examples:
      lxmgr storage volume restore default data snap0
    """
    app = get_app()
    app.query("PUT", volume_path(pool, _only_volume(app, name)), body={"restore": snapshot})


@volume.command()
@click.argument("source", type=ON_SERVER, metavar="POOL/VOLUME[/SNAPSHOT]")
@click.argument("target", type=ON_SERVER, metavar="POOL/VOLUME")
@click.option("--volume-only", is_flag=True, help="Copy the volume without its snapshots.")
def copy(source: str, target: str, volume_only: bool) -> None:
    """Copy a custom volume (with its snapshots), or a snapshot, to a new volume of the same
    or another pool.

    \b
    Examples:
      lxmgr storage volume copy default/data default/data-copy
      lxmgr storage volume copy default/data/snap0 fast/data-old
    """
    app = get_app()
    src_pool, sep, src_ref = source.partition("/")
    dst_pool, dsep, dst_ref = target.partition("/")
    if not sep or not dsep:
        app.abort("Copy takes POOL/VOLUME[/SNAPSHOT] POOL/VOLUME")
    vol, snap = parse_volume(app, src_ref)
    dest = _only_volume(app, dst_ref)
    body = {"name": dest, "type": "custom", "source": {
        "type": "copy", "pool": src_pool, "name": f"{vol}/{snap}" if snap else vol,
        "volume_only": volume_only}}
    app.operate("POST", volume_path(dst_pool), body=body)
    app.echo("Storage volume copied successfully!")


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("instance")
@click.argument("rest", nargs=-1, metavar="[DEVICE] PATH")
def attach(pool: str, name: str, instance: str, rest: tuple[str, ...]) -> None:
    """Attach a custom volume to an instance as a disk device (named after the volume unless
    DEVICE is given), mounted at PATH; at once when the instance runs.

    \b
    Examples:
      lxmgr storage volume attach default data web1 /srv/data
      lxmgr storage volume attach default data web1 shared /srv/shared
    """
    from lxmgr.model.devices import validate_device

    app = get_app()
    vol = _only_volume(app, name)
    if len(rest) not in (1, 2):
        app.abort("Attach takes POOL VOLUME INSTANCE [DEVICE] PATH")
    device, path = (vol, rest[0]) if len(rest) == 1 else rest
    inst, etag = get_object(app, app.instance_path(instance))
    devices = dict(inst.get("devices") or {})
    if device in devices:
        app.abort(f"Device '{device}' already exists on instance '{instance}'")
    devices[device] = validate_device(device, {"type": "disk", "pool": pool, "source": vol,
                                               "path": path})
    put_object(app, app.instance_path(instance), {**instance_put(inst), "devices": devices},
               etag)


@volume.command()
@click.argument("pool", type=ON_SERVER)
@click.argument("name", metavar="VOLUME")
@click.argument("instance")
@click.argument("device", required=False)
def detach(pool: str, name: str, instance: str, device: str | None) -> None:
    """Detach a custom volume from an instance (its disk device is removed; unmounted at
    once when the instance runs).

    \b
    Examples:
      lxmgr storage volume detach default data web1
    """
    app = get_app()
    vol = _only_volume(app, name)
    inst, etag = get_object(app, app.instance_path(instance))
    devices = dict(inst.get("devices") or {})
    if device is None:
        matches = sorted(n for n, d in devices.items() if d.get("type") == "disk"
                         and d.get("pool") == pool and d.get("source") == vol)
        if len(matches) > 1:
            app.abort(f"More than one device of instance '{instance}' uses storage volume "
                      f"'{vol}' ({', '.join(matches)}): name the device")
        if not matches:
            app.abort(f"No device of instance '{instance}' uses storage volume '{vol}' of "
                      f"pool '{pool}'")
        device = matches[0]
    elif device not in devices:
        app.abort(f"Device '{device}' doesn't exist on instance '{instance}'")
    devices.pop(device)
    put_object(app, app.instance_path(instance), {**instance_put(inst), "devices": devices},
               etag)
