"""`lxmgr shell`: a login shell in an instance (lxc's `shell` alias: exec -- su -l)."""

from __future__ import annotations

import click

from lxmgr.cli.actions import run_command, want_pty
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
def shell(name: str) -> None:
    """Open a root login shell in instance NAME (`exec NAME -- su -l`).

    \b
    Examples:
      lxmgr shell web1
    """
    status = run_command(get_app(), name, ["su", "-l"], interactive=want_pty(False, False))
    raise click.exceptions.Exit(status)
