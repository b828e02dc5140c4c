"""`lxmgr list`: instances as a table (lxc's column letters), json, yaml or csv.

The work is in lxmgr.cli.listing, which the click-free fast path shares."""

from __future__ import annotations

import click

from lxmgr.cli.listing import DEFAULT_COLUMNS, list_instances
from lxmgr.cli.options import RemoteRef, format_option, get_app


@click.command("list")
@click.argument("filters", nargs=-1, metavar="[REMOTE:][FILTER]...",
                type=RemoteRef(filters=True))
@format_option
@click.option("-c", "--columns", default=DEFAULT_COLUMNS, show_default=True,
              help="Columns: n name, s state, 4 IPv4, 6 IPv6, t type, S snapshots, p PID, "
                   "P profiles, m memory, u CPU, l last used, c created, e project.")
@click.option("--all-projects", is_flag=True,
              help="Instances of every project (a PROJECT column comes first).")
def list_(filters: tuple[str, ...], fmt: str, columns: str, all_projects: bool) -> None:
    """List instances (of the current project, or --project's).

    A FILTER is a name prefix or regex (`web`, `web[0-9]+`) or KEY=VALUE on config or
    status (`status=running`, `limits.memory=1GiB`).

    \b
    Examples:
      lxmgr list
      lxmgr list web -c nsP
      lxmgr list status=running --format json
      lxmgr list --format csv -c ns4
      lxmgr list --project web
      lxmgr list --all-projects
    """
    list_instances(get_app(), tuple(f for f in filters if f), fmt, columns,
                   all_projects=all_projects)
