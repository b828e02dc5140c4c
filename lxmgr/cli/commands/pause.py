"""`lxmgr pause` (freeze)."""

from __future__ import annotations

import click

from lxmgr.cli.actions import change_states
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_instances)
def pause(names: tuple[str, ...]) -> None:
    """Pause (freeze) instances; `lxmgr resume` thaws them.

    \b
    Examples:
      lxmgr pause web1
      lxmgr pause web1 web2
    """
    change_states(get_app(), names, "freeze")
