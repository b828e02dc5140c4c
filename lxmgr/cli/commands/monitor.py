"""`lxmgr monitor`: print the daemon's events as they happen (`lxc monitor`)."""

from __future__ import annotations

import json

import click

from lxmgr.cli.options import ON_SERVER, get_app

TYPES = ("lifecycle", "operation", "logging")


@click.command()
@click.argument("remote", required=False, metavar="[REMOTE:]", type=ON_SERVER)
@click.option("--type", "types", multiple=True, type=click.Choice(TYPES),
              help="Event type to show (repeatable; default: all).")
@click.option("-f", "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True, help="yaml: a document per event; json: a line per event.")
@click.option("--count", type=int, default=0, metavar="N",
              help="Exit after N events (default: run until interrupted).")
def monitor(remote: str | None, types: tuple[str, ...], fmt: str, count: int) -> None:
    """Print events (lifecycle, operation, logging) until interrupted.

    \b
    Examples:
      lxmgr monitor
      lxmgr monitor --type lifecycle
      lxmgr monitor prod:
      lxmgr monitor --type operation --format json --count 1
    """
    from urllib.parse import urlencode

    from lxmgr.cli.terminal import render_yaml
    from lxmgr.client.websocket import WebSocket

    app = get_app()
    if remote:
        app.abort(f"Expected REMOTE: (a remote name and a colon), not '{remote}'")
    path = "/1.0/events" + (f"?{urlencode({'type': ','.join(types)})}" if types else "")
    ws = WebSocket.connect(app.client, path)
    seen = 0
    try:
        while (msg := ws.recv()) is not None:
            event = json.loads(msg.data)
            app.echo(json.dumps(event) if fmt == "json" else render_yaml(event) + "\n")
            seen += 1
            if count and seen >= count:
                break
    finally:
        ws.close()
