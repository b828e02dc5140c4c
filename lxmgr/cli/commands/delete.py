"""`lxmgr delete`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.actions import change_state
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_instances)
@click.option("-f", "--force", is_flag=True, help="Stop a running instance first (kill).")
def delete(names: tuple[str, ...], force: bool) -> None:
    """Delete instances (they must be stopped unless --force) or snapshots (NAME/SNAP).

    An instance with security.protection.delete=true is refused, with or without --force,
    and left as it is (snapshots are not protected).

    \b
    Examples:
      lxmgr delete web1
      lxmgr delete -f web1 web2
      lxmgr delete web1/snap0
    """
    app = get_app()
    for name in names:
        if "/" in name:
            instance, _, snap = name.partition("/")
            app.operate("DELETE", app.instance_path(instance, "snapshots", quote(snap, safe="")),
                        label=f"Deleting {name}")
            continue
        info = app.query("GET", app.instance_path(name))
        status = info.get("status", "")
        if status != "Stopped" and not force:
            app.abort(f"The instance '{name}' is currently {status.lower()}, stop it first "
                      "or pass --force")
        if is_protected(info):
            # Checked before the stop: lxc stops a protected instance, then the server refuses
            # the delete ("Instance is protected"); a refused delete here changes nothing.
            app.abort(f"Failed deleting instance '{name}': Instance is protected (set "
                      "security.protection.delete=false first)")
        if status != "Stopped":
            change_state(app, name, "stop", timeout=-1, force=True)
        app.operate("DELETE", app.instance_path(name), label=f"Deleting {name}")


def is_protected(info: dict[str, Any]) -> bool:
    """Whether the instance's expanded config sets security.protection.delete."""
    from lxmgr.model.units import parse_bool

    return parse_bool(str((info.get("expanded_config") or {}).get(
        "security.protection.delete") or "false"))
