"""Verb bodies shared by the click commands and the click-free fast path (lxmgr.cli.fast):
state changes (start/stop/restart/pause/resume) and running a command (exec, shell)."""

from __future__ import annotations

import contextlib
import os
import sys

from lxmgr.cli.app import App
from lxmgr.cli.terminal import is_tty, raw_mode, terminal_size
from lxmgr.errors import LxmgrError


def change_state(app: App, name: str, action: str, *, timeout: int | None = None,
                 force: bool = False) -> None:
    """PUT /1.0/instances/{name}/state and wait for the operation."""
    body = {"action": action, "timeout": -1 if timeout is None else timeout, "force": force,
            "stateful": False}
    app.operate("PUT", app.instance_path(name, "state"), body=body,
                label=f"{action.capitalize()} {name}")


def change_states(app: App, names: tuple[str, ...] | list[str], action: str, *,
                  timeout: int | None = None, force: bool = False) -> None:
    """change_state for each name; all are tried, the first error is reported at the end."""
    failed: list[str] = []
    for name in names:
        try:
            change_state(app, name, action, timeout=timeout, force=force)
        except LxmgrError as err:
            if len(names) == 1:
                raise
            print(f"Error: {name}: {err}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        app.abort(f"Failed to {action} {', '.join(failed)}")


def want_pty(force: bool, disable: bool) -> bool:
    """-t forces a pty, -T refuses one; otherwise a pty when stdin and stdout are terminals."""
    if disable:
        return False
    return force or (is_tty(0) and is_tty(1))


def run_command(app: App, name: str, command: list[str], *, env: dict[str, str] | None = None,
                user: int | None = None, group: int | None = None, cwd: str | None = None,
                interactive: bool = False) -> int:
    """Run command in name with this process's stdio; return its exit status. A command
    that could not be executed aborts with its reason and lxc's status (127 not found, 126
    not executable)."""
    from lxmgr.client.exec import build_exec_body, run_exec
    from lxmgr.errors import CommandFailed

    environment = dict(env or {})
    width = height = None
    if interactive:
        environment.setdefault("TERM", os.environ.get("TERM", "xterm"))
        width, height = terminal_size(1)
    body = build_exec_body(command, environment=environment, interactive=interactive,
                           width=width, height=height, user=user, group=group, cwd=cwd)
    try:
        with raw_mode(0) if interactive else contextlib.nullcontext():
            return run_exec(app.client, name, body, size_fd=1 if interactive else None)
    except CommandFailed as err:
        sys.stdout.flush()
        app.abort(str(err), err.exit_status)
