"""`lxmgr export NAME [FILE]` and `lxmgr import FILE [NAME]`: instance backups in LXD's
format (`lxc export` / `lxc import`). Export creates a backup on the server, downloads it
and deletes it there."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command("export")
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("target", required=False)
@click.option("--instance-only", is_flag=True, help="Leave the snapshots out.")
@click.option("--compression", type=click.Choice(["gzip", "xz", "none"]), default="gzip",
              show_default=True, help="Compression of the tarball.")
def export(name: str, target: str | None, instance_only: bool, compression: str) -> None:
    """Export instance NAME with its snapshots as a backup tarball (LXD's format).

    TARGET defaults to NAME.tar.gz (or .tar.xz, .tar) in the current directory.

    \b
    Examples:
      lxmgr export web1
      lxmgr export web1 /srv/backups/web1.tar.xz --compression xz --instance-only
    """
    from lxmgr.client.transfer import download

    app = get_app()
    suffix = {"gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}[compression]
    dest = Path(target or f"{name}{suffix}")
    backup = f"export{int(time.time() * 1000)}"
    app.operate("POST", app.instance_path(name, "backups"), body={
        "name": backup, "instance_only": instance_only, "compression_algorithm": compression,
        "optimized_storage": False}, label=f"Backing up {name}")
    path = app.instance_path(name, "backups", quote(backup, safe=""))
    try:
        written = download(app.client, f"{path}/export", dest)
    finally:
        app.operate("DELETE", path, label="Cleaning up")
    app.echo(f"Backup exported to {written}")


@click.command("import")
@click.argument("file")
@click.argument("name", required=False, type=ON_SERVER)
@click.option("-s", "--storage", metavar="POOL", help="Storage pool of the instance.")
def import_(file: str, name: str | None, storage: str | None) -> None:
    """Import an instance from a backup tarball (NAME defaults to the one it had).

    \b
    Examples:
      lxmgr import web1.tar.gz
      lxmgr import web1.tar.gz web1-restored -s fast
    """
    from lxmgr.client.rest import check_operation
    from lxmgr.client.transfer import upload_file

    app = get_app()
    path = Path(file)
    if not path.is_file():
        app.abort(f"No such backup file '{path}'")
    headers = {"X-LXD-name": name} if name else {}
    if storage:
        headers["X-LXD-pool"] = storage
    op = app.client.wait_operation(upload_file(app.client, "/1.0/instances", path, headers))
    url = (check_operation(op).get("metadata") or {}).get("entity_url", "")
    app.echo(f"Instance imported: {url.rsplit('/', 1)[-1]}")
