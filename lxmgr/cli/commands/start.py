"""`lxmgr start` and the state-change helper stop/restart/pause/resume share."""

from __future__ import annotations

import click

from lxmgr.cli.app import App, get_app
from lxmgr.cli.completion import complete_instances


def change_state(app: App, name: str, action: str, *, timeout: int | None = None,
                 force: bool = False) -> None:
    """PUT /1.0/instances/{name}/state and wait for the operation."""
    body = {"action": action, "timeout": -1 if timeout is None else timeout, "force": force,
            "stateful": False}
    app.operate("PUT", app.instance_path(name, "state"), body=body,
                label=f"{action.capitalize()} {name}")


def change_states(names: tuple[str, ...], action: str, **kwargs: object) -> None:
    """change_state for each name; all are tried, the first error is reported at the end."""
    from lxmgr.errors import LxmgrError

    app = get_app()
    failed: list[str] = []
    for name in names:
        try:
            change_state(app, name, action, **kwargs)  # type: ignore[arg-type]
        except LxmgrError as err:
            if len(names) == 1:
                raise
            click.echo(f"Error: {name}: {err}", err=True)
            failed.append(name)
    if failed:
        app.abort(f"Failed to {action} {', '.join(failed)}")


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                shell_complete=complete_instances)
def start(names: tuple[str, ...]) -> None:
    """Start instances.

    \b
    Examples:
      lxmgr start web1
      lxmgr start web1 web2 db1
    """
    change_states(names, "start")


def shutdown_options(command):  # type: ignore[no-untyped-def]
    """NAME... plus --force and --timeout, shared by stop and restart."""
    command = click.option("--timeout", type=int, default=None, metavar="SECONDS",
                           help="Seconds to wait for a clean shutdown (default: the "
                                "server's).")(command)
    command = click.option("-f", "--force", is_flag=True,
                           help="Kill the instance instead of shutting down.")(command)
    return click.argument("names", nargs=-1, required=True, metavar="NAME...",
                          shell_complete=complete_instances)(command)
