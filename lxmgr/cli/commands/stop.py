"""`lxmgr stop`."""

from __future__ import annotations

import click

from lxmgr.cli.actions import change_states
from lxmgr.cli.commands.start import shutdown_options
from lxmgr.cli.options import get_app


@click.command()
@shutdown_options
def stop(names: tuple[str, ...], force: bool, timeout: int | None) -> None:
    """Stop instances (clean shutdown, or --force to kill).

    \b
    Examples:
      lxmgr stop web1
      lxmgr stop web1 web2 --timeout 10
      lxmgr stop -f web1
    """
    change_states(get_app(), names, "stop", timeout=timeout, force=force)
