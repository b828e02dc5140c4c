"""Manager, part three: running commands in instances through their supervisors. A mixin
of Manager. A command that cannot be executed raises CommandFailed (its exit_status is
127 or 126, as a shell's); the API reports it as LXD does, a finished exec with that
`return`, plus the one-line reason."""

from __future__ import annotations

import logging
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, InvalidState
from lxmgr.supervisor import control

log = logging.getLogger(__name__)


class ExecMixin:
    """exec with given stdio or a pty (mixed into Manager)."""

    # -- exec --------------------------------------------------------------------------------

    def exec(self, name: str, argv: list[str], *, stdin: int = 0, stdout: int = 1,
             stderr: int = 2, env: dict[str, str] | None = None, cwd: str = "",
             uid: int = 0, gid: int = 0) -> int:
        """Run a command with the given descriptors as its stdio; returns its exit status
        (CommandFailed when it could not be executed)."""
        if not argv:
            raise InvalidConfig("Missing command to execute")
        _check_env(env or {})
        self.store.get(name)
        try:
            sock, _pid, _ = control.exec_start(self.socket_path(name), argv,
                                               [stdin, stdout, stderr], env=env or {},
                                               cwd=cwd, uid=uid, gid=gid)
        except control.NotRunning:
            raise InvalidState(f"Instance '{name}' is not running") from None
        return control.exec_wait(sock)

    def exec_pty(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: str = "", uid: int = 0, gid: int = 0, rows: int = 24,
                 cols: int = 80) -> tuple[Any, int]:
        """Start an interactive command on a pty of the container; returns (handle, master).
        Resize with lxmgr.linux.libc.set_winsize(master, ...); wait with exec_wait(handle)."""
        handle, _pid, master = self.exec_start(name, argv, None, pty=True, env=env, cwd=cwd,
                                               uid=uid, gid=gid, rows=rows, cols=cols)
        if master is None:  # the command ended before it could start
            raise Conflict(f"Command '{argv[0]}' could not start in '{name}'")
        return handle, master

    def exec_start(self, name: str, argv: list[str], stdio: list[int] | None, *,
                   pty: bool = False, env: dict[str, str] | None = None, cwd: str = "",
                   uid: int = 0, gid: int = 0, rows: int = 24,
                   cols: int = 80) -> tuple[Any, int, int | None]:
        """Start a command with stdio fds (or a pty); (handle, host pid, pty master)."""
        if not argv:
            raise InvalidConfig("Missing command to execute")
        _check_env(env or {})
        self.store.get(name)
        try:
            return control.exec_start(self.socket_path(name), argv, stdio, pty=pty,
                                      env=env or {}, cwd=cwd, uid=uid, gid=gid,
                                      rows=rows, cols=cols)
        except control.NotRunning:
            raise InvalidState(f"Instance '{name}' is not running") from None

    exec_wait = staticmethod(control.exec_wait)


def _check_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise InvalidConfig(f"Invalid environment variable '{key}'")
