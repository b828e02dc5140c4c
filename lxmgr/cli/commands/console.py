"""`lxmgr console`: the instance console log, or an attached console (`lxc console`)."""

from __future__ import annotations

import sys

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import raw_mode, terminal_size

DETACH = b"\x01q"  # ctrl-a q, as lxc


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.option("--show-log", is_flag=True, help="Print the console log and exit.")
def console(name: str, show_log: bool) -> None:
    """Attach to an instance's console (ctrl-a q detaches), or print its log.

    \b
    Examples:
      lxmgr console web1 --show-log
      lxmgr console web1
    """
    app = get_app()
    if show_log:
        sys.stdout.write(app.client.raw(app.instance_path(name, "console")).decode(
            errors="replace"))
        sys.stdout.flush()
        return
    from lxmgr.client.exec import ExecSession, forwarded_signals
    from lxmgr.errors import NotSupported

    width, height = terminal_size(1)
    body = {"width": width, "height": height, "type": "console"}
    session = ExecSession(app.client, name, body, endpoint="console", detach=DETACH)
    try:
        session.start()
    except NotSupported as err:
        app.abort(str(err))
    click.echo("To detach from the console, press: <ctrl>+a q", err=True)
    try:
        with raw_mode(0), forwarded_signals(session, size_fd=1):
            session.pump(0, 1, 2)
    finally:
        session.close()
