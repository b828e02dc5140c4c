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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            try:
                args = hoist_globals(args)
            except click.UsageError as err:
                err.ctx = ctx
                raise
        return super().parse_args(ctx, args)

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


# Options of the root group a user may also give after the verb, as lxc's persistent flags
# (cobra): `lxmgr list --project web` is `lxmgr --project web list`.
GLOBAL_VALUED = ("--project",)


def hoist_globals(args: list[str]) -> list[str]:
    """args with every GLOBAL_VALUED option (`--project NAME`, `--project=NAME`) before `--`
    moved to the front, where the root group parses it; what follows `--` is the command's.
    A trailing one without its value is click's usage error."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        name = arg.partition("=")[0]
        if name in GLOBAL_VALUED and "=" in arg:
            front.append(arg)
        elif arg in GLOBAL_VALUED:
            if i + 1 >= len(args) or args[i + 1] == "--":
                raise click.UsageError(f"Option '{arg}' requires an argument.")
            front += [arg, args[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(1)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message="%(version)s")
@click.option("--debug", is_flag=True, help="Show requests and full tracebacks.")
@click.option("--socket", "socket_path", envvar="LXMGR_SOCKET", metavar="PATH",
              help="lxmgrd's unix socket (default: $LXMGR_DIR/unix.socket).")
@click.option("--project", metavar="NAME",
              help="Work in project NAME instead of the current one (`lxmgr project "
                   "switch`); also accepted after the verb.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, socket_path: str | None,
        project: str | None) -> None:
    """Manage system containers through lxmgrd (LXD's `lxc`, for lxmgr).

    \b
    Examples:
      lxmgr launch debian web1
      lxmgr list
      lxmgr exec web1 -- systemctl status
      lxmgr shell web1
      lxmgr --project web list
      lxmgr list --all-projects

    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_LXMGR_COMPLETE=bash_source lxmgr)"
    """
    from lxmgr.cli.app import App

    if ctx.obj is None:
        ctx.obj = App(debug=debug, socket_path=socket_path, project=project)
    else:  # tests pass a prepared App
        ctx.obj.debug = ctx.obj.debug or debug
        ctx.obj.project_override = project or ctx.obj.project_override


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `lxmgr` script."""
    cli.main(args=argv, prog_name="lxmgr")


if __name__ == "__main__":
    main(sys.argv[1:])
