"""`lxmgr start`, and the NAME.../--force/--timeout options stop and restart share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from lxmgr.cli.actions import change_states
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app

F = TypeVar("F", bound=Callable[..., Any])


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_instances)
def start(names: tuple[str, ...]) -> None:
    """Start instances.

    \b
    Examples:
      lxmgr start web1
      lxmgr start web1 web2 db1
    """
    change_states(get_app(), names, "start")


def shutdown_options(command: F) -> F:
    """NAME... plus --force and --timeout, shared by stop and restart."""
    command = click.option("--timeout", type=int, default=None, metavar="SECONDS",
                           help="Seconds to wait for a clean shutdown (default: the "
                                "server's).")(command)
    command = click.option("-f", "--force", is_flag=True,
                           help="Kill the instance instead of shutting down.")(command)
    return click.argument("names", nargs=-1, required=True, metavar="NAME...",
                          type=ON_SERVER, shell_complete=complete_instances)(command)
