"""`lxmgr exec`: run a command in an instance, with a pty when on a terminal (`lxc exec`)."""

from __future__ import annotations

import sys

import click

from lxmgr.cli.actions import run_command, want_pty
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import parse_assignments


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-E", "--env", "env", multiple=True, metavar="KEY=VALUE",
              help="Environment variable to set (repeatable).")
@click.option("--user", type=int, default=None, help="User ID to run as (default 0).")
@click.option("--group", type=int, default=None, help="Group ID to run as (default 0).")
@click.option("--cwd", default=None, metavar="DIR", help="Directory to run in.")
@click.option("-t", "--force-interactive", "force_pty", is_flag=True,
              help="Always allocate a pty.")
@click.option("-T", "--force-noninteractive", "no_pty", is_flag=True,
              help="Never allocate a pty (separate stdout and stderr).")
def exec_(name: str, command: tuple[str, ...], env: tuple[str, ...], user: int | None,
          group: int | None, cwd: str | None, force_pty: bool, no_pty: bool) -> None:
    """Run COMMAND in instance NAME; exit with the command's status.

    Put `--` before the command so its options are not read as lxmgr's.

    \b
    Examples:
      lxmgr exec web1 -- systemctl is-system-running
      lxmgr exec web1 -- bash
      lxmgr exec web1 --env DEBUG=1 --cwd /srv -- ./run.sh
      echo hello | lxmgr exec web1 -T -- cat
    """
    app = get_app()
    environment = parse_assignments(env, "environment variable") if env else {}
    status = run_command(app, name, list(command), env=environment, user=user, group=group,
                         cwd=cwd, interactive=want_pty(force_pty, no_pty))
    sys.stdout.flush()
    raise click.exceptions.Exit(status)
