"""`lxmgr delete`."""

from __future__ import annotations

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
        status = app.query("GET", app.instance_path(name)).get("status", "")
        if status != "Stopped":
            if not force:
                app.abort(f"The instance '{name}' is currently {status.lower()}, stop it first "
                          "or pass --force")
            change_state(app, name, "stop", timeout=-1, force=True)
        app.operate("DELETE", app.instance_path(name), label=f"Deleting {name}")
