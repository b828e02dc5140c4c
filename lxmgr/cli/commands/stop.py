"""`lxmgr stop`."""

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
def stop(names: tuple[str, ...], force: bool, timeout: int | None) -> None:
    """Stop instances (clean shutdown, or --force to kill).

    \b
    Examples:
      lxmgr stop web1
      lxmgr stop web1 web2 --timeout 10
      lxmgr stop -f web1
    """
    change_states(names, "stop", timeout=timeout, force=force)
