"""LXD's exec protocol on the client side (`lxd/instance_exec.go`, `lxc/exec.go`).

POST /1.0/instances/{n}/exec with wait-for-websocket, then one websocket per fd from the
operation metadata: interactive = "0" (pty, both directions) + "control"; otherwise
"0", "1", "2" + "control". stdin travels as binary frames closed by an empty TEXT frame
(the barrier); output ends at a close or an empty frame; the exit status is the finished
operation's metadata["return"]. A command the server could not execute ends with return
127 (not found) or 126 (not executable), as LXD's; lxmgrd adds metadata["error"] saying
why, which finish() raises as CommandFailed. Runs in the CLI process: one thread per stream.
Terminal raw mode is the CLI's business (lxmgr.cli.terminal), not this module's.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading

from lxmgr import errors
from lxmgr.client.rest import Client, operation_id, quote
from lxmgr.client.websocket import WebSocket
from lxmgr.errors import CommandFailed

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

# Signals the CLI forwards to the command, as lxc does (SIGWINCH becomes window-resize).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
_CHUNK = 65536


def build_exec_body(command: list[str], *, environment: dict[str, str] | None = None,
                    interactive: bool = False, width: int | None = None,
                    height: int | None = None, user: int | None = None,
                    group: int | None = None, cwd: str | None = None) -> dict[str, Any]:
    """The InstanceExecPost body; user/group/cwd only when set (as lxc sends them)."""
    body: dict[str, Any] = {
        "command": list(command),
        "environment": dict(environment or {}),
        "wait-for-websocket": True,
        "interactive": interactive,
        "record-output": False,
    }
    if interactive:
        body["width"], body["height"] = width or 80, height or 24
    if user:
        body["user"] = user
    if group:
        body["group"] = group
    if cwd:
        body["cwd"] = cwd
    return body


def resize_message(width: int, height: int) -> dict[str, Any]:
    """A control message; LXD wants the sizes as strings."""
    return {"command": "window-resize", "args": {"width": str(width), "height": str(height)}}


def signal_message(signum: int) -> dict[str, Any]:
    return {"command": "signal", "signal": int(signum)}


class ExecSession:
    """One running exec: its operation and websockets. Use start(), then pump() and finish()."""

    def __init__(self, client: Client, instance: str, body: dict[str, Any], *,
                 endpoint: str = "exec", detach: bytes | None = None) -> None:
        self.client = client
        self.instance = instance
        self.body = body
        self.endpoint = endpoint  # "exec", or "console" (same fds, interactive)
        self.detach = detach  # a stdin sequence that ends the session (console: ctrl-a q)
        self.interactive = endpoint == "console" or bool(body.get("interactive"))
        self.operation: dict[str, Any] = {}
        self.sockets: dict[str, WebSocket] = {}
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> None:
        """POST the exec and connect control first, then the data fds (like lxc)."""
        path = f"/1.0/instances/{quote(self.instance)}/{self.endpoint}"
        self.operation = self.client.operate("POST", path, body=self.body, wait=False)
        fds = dict((self.operation.get("metadata") or {}).get("fds") or {})
        wanted = ["0"] if self.interactive else ["0", "1", "2"]
        missing = [fd for fd in wanted if fd not in fds]
        if missing:
            raise errors.LxmgrError(f"The {self.endpoint} of '{self.instance}' returned no "
                                    f"websocket for fd {', '.join(missing)}")
        op = quote(operation_id(self.operation))
        for fd in (["control"] if "control" in fds else []) + wanted:
            url = f"/1.0/operations/{op}/websocket?secret={quote(str(fds[fd]))}"
            self.sockets[fd] = WebSocket.connect(self.client, url)

    def control(self, message: dict[str, Any]) -> None:
        """Send a control message; ignored when there is no control socket."""
        sock = self.sockets.get("control")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send_json(message)

    def resize(self, width: int, height: int) -> None:
        self.control(resize_message(width, height))

    def signal(self, signum: int) -> None:
        self.control(signal_message(signum))

    def pump(self, stdin_fd: int | None, stdout_fd: int, stderr_fd: int) -> None:
        """Copy stdin to fd 0 and fds 1/2 (or the pty) out until the output streams end."""
        self._wake_r, self._wake_w = os.pipe()
        try:
            outputs = [("0", stdout_fd)] if self.interactive else [("1", stdout_fd),
                                                                    ("2", stderr_fd)]
            threads = [_thread(self._read_stream, f"exec-out-{fd}", self.sockets[fd], out)
                       for fd, out in outputs]
            feeder = _thread(self._feed_stdin, "exec-stdin", stdin_fd)
            for thread in threads:
                while thread.is_alive():  # join() with a timeout stays signal-friendly
                    thread.join(0.5)
            os.write(self._wake_w, b"x")
            feeder.join(2)
        finally:
            os.close(self._wake_r)
            os.close(self._wake_w)

    def finish(self) -> int:
        """Wait for the operation; close every websocket; return the command's exit status
        (CommandFailed when the server says it could not be executed)."""
        try:
            op = self.client.wait_operation(self.operation)
        finally:
            self.close()
        metadata = op.get("metadata") or {}
        code = int(metadata.get("return", 0) or 0)
        failure = metadata.get("error")
        if isinstance(failure, str) and failure and code in (126, 127):
            raise CommandFailed(failure.splitlines()[0], code)
        return code

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
            sock.shutdown()

    def _read_stream(self, sock: WebSocket, out_fd: int) -> None:
        while True:
            msg = sock.recv()
            if msg is None or not msg.data:  # close frame or empty frame: end of stream
                return
            _write_all(out_fd, msg.data)

    def _feed_stdin(self, stdin_fd: int | None) -> None:
        sock = self.sockets["0"]
        try:
            while stdin_fd is not None:
                ready, _, _ = select.select([stdin_fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return  # the command ended: stop reading our stdin
                data = os.read(stdin_fd, _CHUNK)
                if not data:
                    break
                if self.detach and self.detach in data:
                    sock.send_binary(data.split(self.detach, 1)[0])
                    self.close()  # ends the output pumps too
                    return
                sock.send_binary(data)
            sock.send_text("")  # barrier: EOF on the command's stdin
        except OSError:  # the sockets were closed under us: the session is over
            return


def _thread(target: Any, name: str, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, args=args, daemon=True)
    thread.start()
    return thread


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


@contextlib.contextmanager
def forwarded_signals(session: ExecSession, size_fd: int | None = None) -> Iterator[None]:
    """Forward FORWARDED_SIGNALS to the command and SIGWINCH as window-resize (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        session.signal(signum)

    def resize(_signum: int, _frame: object) -> None:
        if size_fd is not None:
            with contextlib.suppress(OSError):
                size = os.get_terminal_size(size_fd)
                session.resize(size.columns, size.lines)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_exec(client: Client, instance: str, body: dict[str, Any], *, stdin_fd: int | None = 0,
             stdout_fd: int = 1, stderr_fd: int = 2, size_fd: int | None = None) -> int:
    """Run a command in instance with our stdio; return its exit status (CommandFailed
    when it could not be executed)."""
    session = ExecSession(client, instance, body)
    try:
        session.start()
    except BaseException:
        session.close()
        raise
    with forwarded_signals(session, size_fd):
        try:
            session.pump(stdin_fd, stdout_fd, stderr_fd)
        except BaseException:
            session.close()
            raise
    return session.finish()
