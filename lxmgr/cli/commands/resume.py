"""`lxmgr resume` (unfreeze)."""

from __future__ import annotations

import click

from lxmgr.cli.actions import change_states
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_instances)
def resume(names: tuple[str, ...]) -> None:
    """Resume (unfreeze) paused instances.

    \b
    Examples:
      lxmgr resume web1
    """
    change_states(get_app(), names, "unfreeze")
