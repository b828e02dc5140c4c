"""`lxmgr exec`: run a command in an instance, with a pty when on a terminal (`lxc exec`)."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from lxmgr.cli.app import App, get_app
from lxmgr.cli.completion import complete_instances
from lxmgr.cli.terminal import is_tty, parse_assignments, raw_mode, terminal_size


def want_pty(force: bool, disable: bool) -> bool:
    """-t forces a pty, -T refuses one; otherwise a pty when stdin and stdout are terminals."""
    if disable:
        return False
    return force or (is_tty(0) and is_tty(1))


def run_command(app: App, name: str, command: list[str], *, env: dict[str, str] | None = None,
                user: int | None = None, group: int | None = None, cwd: str | None = None,
                interactive: bool = False) -> int:
    """Run command in name with this process's stdio; return its exit status."""
    from lxmgr.client.exec import build_exec_body, run_exec

    environment = dict(env or {})
    width = height = None
    if interactive:
        environment.setdefault("TERM", os.environ.get("TERM", "xterm"))
        width, height = terminal_size(1)
    body = build_exec_body(command, environment=environment, interactive=interactive,
                           width=width, height=height, user=user, group=group, cwd=cwd)
    with raw_mode(0) if interactive else contextlib.nullcontext():
        return run_exec(app.client, name, body, size_fd=1 if interactive else None)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name", shell_complete=complete_instances)
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
