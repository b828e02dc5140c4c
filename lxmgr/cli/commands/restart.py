"""`lxmgr restart`."""

from __future__ import annotations

import click

from lxmgr.cli.actions import change_states
from lxmgr.cli.commands.start import shutdown_options
from lxmgr.cli.options import get_app


@click.command()
@shutdown_options
def restart(names: tuple[str, ...], force: bool, timeout: int | None) -> None:
    """Restart instances.

    \b
    Examples:
      lxmgr restart web1
      lxmgr restart -f web1 web2
    """
    change_states(get_app(), names, "restart", timeout=timeout, force=force)
