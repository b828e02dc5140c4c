"""`lxmgr storage ...`: storage pools (`lxc storage`): list, create, show, info, set the
description, delete; `lxmgr storage volume ...` (storage_volume.py) for custom volumes. Talks
to /1.0/storage-pools only; the daemon validates pool config."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.commands.storage_volume import volume
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import format_size, parse_assignments, render, render_yaml

LIST_HEADERS = ["NAME", "DRIVER", "SOURCE", "DESCRIPTION", "USED BY", "STATE"]


def pool_path(name: str, *rest: str) -> str:
    return "/".join([f"/1.0/storage-pools/{quote(name, safe='')}", *rest])


@click.group()
def storage() -> None:
    """Manage storage pools (dir, overlay, btrfs).

    \b
    Examples:
      lxmgr storage list
      lxmgr storage create fast btrfs size=20GiB
      lxmgr launch debian web1 -s fast
      lxmgr storage volume create fast data
    """


storage.add_command(volume)


@storage.command("list")
@format_option
def list_(fmt: str) -> None:
    """List storage pools.

    \b
    Examples:
      lxmgr storage list
      lxmgr storage list --format yaml
    """
    app = get_app()
    pools = app.query("GET", "/1.0/storage-pools", params={"recursion": 1}) or []
    rows = [[str(p.get("name", "")), str(p.get("driver", "")),
             str((p.get("config") or {}).get("source", "")), str(p.get("description", "")),
             str(len(p.get("used_by") or [])), str(p.get("status", "")).upper()]
            for p in sorted(pools, key=lambda p: str(p.get("name", "")))]
    app.echo(render(fmt, LIST_HEADERS, rows, pools))


@storage.command()
@click.argument("name", type=ON_SERVER)
@click.argument("driver", type=click.Choice(["dir", "overlay", "btrfs"]))
@click.argument("config", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-d", "--description", default="", help="Pool description.")
def create(name: str, driver: str, config: tuple[str, ...], description: str) -> None:
    """Create a storage pool.

    dir and overlay take `source=DIR` (default: a directory under the daemon's state);
    btrfs takes `size=` for a loop file (default 5GiB) or `source=/dev/...` (formatted!).

    \b
    Examples:
      lxmgr storage create fast btrfs size=20GiB
      lxmgr storage create scratch dir source=/srv/lxmgr
    """
    app = get_app()
    body: dict[str, Any] = {"name": name, "driver": driver, "description": description,
                            "config": parse_assignments(config, "config") if config else {}}
    app.query("POST", "/1.0/storage-pools", body=body)
    app.echo(f"Storage pool {name} created")


@storage.command()
@click.argument("name", type=ON_SERVER)
def show(name: str) -> None:
    """Show a storage pool's definition.

    \b
    Examples:
      lxmgr storage show default
    """
    app = get_app()
    app.echo(render_yaml(app.query("GET", pool_path(name))))


@storage.command()
@click.argument("name", type=ON_SERVER)
def info(name: str) -> None:
    """Show a storage pool's space and users.

    \b
    Examples:
      lxmgr storage info default
    """
    app = get_app()
    pool = app.query("GET", pool_path(name)) or {}
    space = (app.query("GET", pool_path(name, "resources")) or {}).get("space") or {}
    lines = ["info:", f"  description: {pool.get('description', '')}",
             f"  driver: {pool.get('driver', '')}", f"  name: {name}",
             f"  space used: {format_size(int(space.get('used') or 0))}",
             f"  total space: {format_size(int(space.get('total') or 0))}", "used by:"]
    for url in pool.get("used_by") or []:
        kind = "volumes" if "/volumes/" in url else "instances"  # custom volumes' URLs
        lines.append(f"  {kind}: {url.rsplit('/', 1)[-1]}")
    app.echo("\n".join(lines))


@storage.command("set")
@click.argument("name", type=ON_SERVER)
@click.argument("assignment", metavar="description=TEXT")
def set_(name: str, assignment: str) -> None:
    """Set a storage pool's description (its config is fixed once created).

    \b
    Examples:
      lxmgr storage set fast description="NVMe scratch"
    """
    app = get_app()
    values = parse_assignments((assignment,), "property")
    if set(values) != {"description"}:
        app.abort(f"Only the description can be changed, not '{next(iter(values))}'")
    app.query("PATCH", pool_path(name), body={"description": values["description"]})


@storage.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...", type=ON_SERVER)
def delete(names: tuple[str, ...]) -> None:
    """Delete storage pools (not the default one, nor one in use).

    \b
    Examples:
      lxmgr storage delete fast
    """
    app = get_app()
    for name in names:
        app.query("DELETE", pool_path(name))
        app.echo(f"Storage pool {name} deleted")
