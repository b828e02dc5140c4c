"""`lxmgr copy SRC[/SNAP] DST` and `lxmgr move OLD NEW` (lxc's copy and rename-by-move)."""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import parse_assignments


@click.command()
@click.argument("source", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("target", required=False, type=ON_SERVER)
@click.option("--instance-only", is_flag=True, help="Do not copy the snapshots.")
@click.option("-c", "--config", "config", multiple=True, metavar="KEY=VALUE",
              help="Config key to set on the copy (repeatable).")
@click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
              help="Profile of the copy (repeatable; default: the source's).")
@click.option("--no-profiles", is_flag=True, help="Give the copy no profile at all.")
@click.option("-e", "--ephemeral", is_flag=True, help="Make the copy ephemeral.")
@click.option("--start", is_flag=True, help="Start the copy.")
def copy(source: str, target: str | None, instance_only: bool, config: tuple[str, ...],
         profiles: tuple[str, ...], no_profiles: bool, ephemeral: bool, start: bool) -> None:
    """Copy instance SOURCE (or its snapshot SOURCE/SNAP) to a new instance TARGET.

    The copy gets a new identity (uuid, MAC addresses) and is not started unless --start.

    \b
    Examples:
      lxmgr copy web1 web2
      lxmgr copy web1/snap0 web1-old --instance-only
      lxmgr copy web1 web3 -c limits.memory=1GiB --start
    """
    from lxmgr.model.instance import generate_name, validate_instance_name

    app = get_app()
    target = target or generate_name()
    validate_instance_name(target)
    body: dict[str, Any] = {"name": target, "source": {
        "type": "copy", "source": source, "instance_only": instance_only}, "start": start}
    if config:
        body["config"] = parse_assignments(config, "config")
    if no_profiles:
        body["profiles"] = []
    elif profiles:
        body["profiles"] = list(profiles)
    if ephemeral:
        body["ephemeral"] = True
    app.operate("POST", "/1.0/instances", body=body, label=f"Copying {source} to {target}")


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("new_name", type=ON_SERVER)
def move(name: str, new_name: str) -> None:
    """Rename a stopped instance NAME to NEW_NAME, with its snapshots.

    \b
    Examples:
      lxmgr move web1 web-old
    """
    app = get_app()
    app.operate("POST", app.instance_path(name), body={"name": new_name},
                label=f"Renaming {name} to {new_name}")
