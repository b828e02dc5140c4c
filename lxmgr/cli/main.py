"""Root `lxmgr` group: global flags, lazy verb loading, one-line errors (C8, C12).

Verbs live in lxmgr.cli.commands.<module> and are imported only when run (or listed by
--help), so `lxmgr --version` costs little more than importing click.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from lxmgr import __version__
from lxmgr.cli.app import describe_error, describe_os_error
from lxmgr.errors import LxmgrError

# verb -> "module:attribute" under lxmgr.cli.commands
COMMANDS: dict[str, str] = {
    "launch": "launch:launch",
    "init": "init:init",
    "start": "start:start",
    "stop": "stop:stop",
    "restart": "restart:restart",
    "pause": "pause:pause",
    "resume": "resume:resume",
    "delete": "delete:delete",
    "snapshot": "snapshot:snapshot",
    "restore": "snapshot:restore",
    "copy": "copy:copy",
    "move": "copy:move",
    "rename": "copy:move",
    "list": "list:list_",
    "info": "info:info",
    "exec": "exec:exec_",
    "file": "file:file",
    "shell": "shell:shell",
    "console": "console:console",
    "config": "config:config",
    "profile": "profile:profile",
    "network": "network:network",
    "project": "project:project",
    "storage": "storage:storage",
    "remote": "remote:remote",
    "publish": "publish:publish",
    "export": "backup:export",
    "monitor": "monitor:monitor",
    "import": "backup:import_",
    "image": "image:image",
    "operation": "operation:operation",
    "daemon": "daemon:daemon",
    "doctor": "doctor:doctor",
    "dev": "dev:dev",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; turns LxmgrError into one line."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(f"lxmgr.cli.commands.{module}"), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"lxmgr.cli.commands.{module}:{attr} is not a click command")
        self.commands[cmd_name] = command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except LxmgrError as err:
            if debug:
                raise
            _fail(describe_error(err))
        except OSError as err:
            if debug:
                raise
            _fail(describe_os_error(err))
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("", err=True)
            raise click.exceptions.Exit(130) from None


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(1)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message="%(version)s")
@click.option("--debug", is_flag=True, help="Show requests and full tracebacks.")
@click.option("--socket", "socket_path", envvar="LXMGR_SOCKET", metavar="PATH",
              help="lxmgrd's unix socket (default: $LXMGR_DIR/unix.socket).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, socket_path: str | None) -> None:
    """Manage system containers through lxmgrd (LXD's `lxc`, for lxmgr).

    \b
    Examples:
      lxmgr launch debian web1
      lxmgr list
      lxmgr exec web1 -- systemctl status
      lxmgr shell web1

    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_LXMGR_COMPLETE=bash_source lxmgr)"
    """
    from lxmgr.cli.app import App

    if ctx.obj is None:
        ctx.obj = App(debug=debug, socket_path=socket_path)
    else:  # tests pass a prepared App
        ctx.obj.debug = ctx.obj.debug or debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `lxmgr` script."""
    cli.main(args=argv, prog_name="lxmgr")


if __name__ == "__main__":
    main(sys.argv[1:])
