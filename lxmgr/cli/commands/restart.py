"""`lxmgr restart`."""

from __future__ import annotations

import click

from lxmgr.cli.commands.start import change_states, shutdown_options


@click.command()
@shutdown_options
def restart(names: tuple[str, ...], force: bool, timeout: int | None) -> None:
    """Restart instances.

    \b
    Examples:
      lxmgr restart web1
      lxmgr restart -f web1 web2
    """
    change_states(names, "restart", timeout=timeout, force=force)
