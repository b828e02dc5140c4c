"""`lxmgr restart`."""

from __future__ import annotations

import click

from lxmgr.cli.commands.start import change_states
from lxmgr.cli.completion import complete_instances


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                shell_complete=complete_instances)
@click.option("-f", "--force", is_flag=True, help="Kill the instance instead of shutting down.")
@click.option("--timeout", type=int, default=None, metavar="SECONDS",
              help="Seconds to wait for a clean shutdown (default: the server's).")
def restart(names: tuple[str, ...], force: bool, timeout: int | None) -> None:
    """Restart instances.

    \b
    Examples:
      lxmgr restart web1
      lxmgr restart -f web1 web2
    """
    change_states(names, "restart", timeout=timeout, force=force)
