"""`lxmgr snapshot NAME [SNAP]` and `lxmgr restore NAME SNAP` (lxc's snapshot verbs)."""

from __future__ import annotations

from urllib.parse import quote

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("snapshot", required=False)
@click.option("--reuse", is_flag=True, help="Replace a snapshot of that name if it exists.")
@click.option("--no-expiry", is_flag=True, help="Ignore snapshots.expiry: keep it forever.")
def snapshot(name: str, snapshot: str | None, reuse: bool, no_expiry: bool) -> None:
    """Take a snapshot of instance NAME (running ones are frozen while it is copied).

    SNAP defaults to the next name from snapshots.pattern (snap0, snap1, ...).

    \b
    Examples:
      lxmgr snapshot web1
      lxmgr snapshot web1 before-upgrade
      lxmgr snapshot web1 nightly --reuse --no-expiry
    """
    app = get_app()
    if snapshot is not None and reuse:
        path = app.instance_path(name, "snapshots", quote(snapshot, safe=""))
        names = app.query("GET", app.instance_path(name, "snapshots")) or []
        if path in names:
            app.operate("DELETE", path, label=f"Deleting {name}/{snapshot}")
    body: dict[str, object] = {}
    if snapshot is not None:
        body["name"] = snapshot
    if no_expiry:
        body["expires_at"] = "0001-01-01T00:00:00Z"
    app.operate("POST", app.instance_path(name, "snapshots"), body=body,
                label=f"Snapshotting {name}")


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("snapshot")
def restore(name: str, snapshot: str) -> None:
    """Restore instance NAME from its snapshot SNAP (a running instance is restarted).

    \b
    Examples:
      lxmgr restore web1 snap0
    """
    app = get_app()
    app.operate("PUT", app.instance_path(name), body={"restore": snapshot},
                label=f"Restoring {name}/{snapshot}")
