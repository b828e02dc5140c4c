"""`python -m lxmgr.supervisor start CONFIG` (or `warm`): detach, boot the container, supervise.

The command returns once the container's init has been exec'd (exit 0, PID 1's host pid on
stdout) or setup failed (exit 1, a one-line error on stderr). The supervisor itself detaches
(fork + setsid), so it is not a child of whoever started it and survives the manager being
killed. Everything it needs is imported before the fork: container processes cannot read the
interpreter's files once they changed uid (kernel-facts §3).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys

from lxmgr.cgroups import base as cgroup_base
from lxmgr.cgroups.detect import detect
from lxmgr.errors import LxmgrError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.supervisor.config import SupervisorConfig
from lxmgr.supervisor.monitor import Monitor

LOCK_FILE = "supervisor.lock"

USAGE = "usage: python -m lxmgr.supervisor start CONFIG | warm"


def main(argv: list[str]) -> int:
    if argv == ["warm"]:
        return _warm()
    if len(argv) != 2 or argv[0] != "start":
        print(USAGE, file=sys.stderr)
        return 2
    return start(argv[1])


def _warm() -> int:
    """Pre-started supervisor: interpreter up and modules imported, waiting on stdin for the
    config path of the container to start (the manager keeps one ready so a start does not
    pay Python's start-up). EOF means it is not needed: exit quietly."""
    line = sys.stdin.readline().strip()
    if not line:
        return 0
    return start(line)


def start(config_path: str) -> int:
    """Detach a supervisor for the container described by config_path; report its boot."""
    try:
        with open(config_path) as f:
            cfg = SupervisorConfig.from_json(f.read())
    except (OSError, ValueError, TypeError, KeyError) as err:
        print(f"Error: Invalid supervisor config '{config_path}': {err}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return _report(read_end)
    os.close(read_end)
    try:
        os.setsid()
        _daemon(cfg, write_end)
    except BaseException as err:  # noqa: BLE001 - anything before boot is reported
        _send(write_end, f"ERR {err}")
        os._exit(1)
    os._exit(0)


def _report(read_end: int) -> int:
    """Parent: wait for the detached supervisor's verdict."""
    data = b""
    while chunk := os.read(read_end, 4096):
        data += chunk
    text = data.decode(errors="replace").strip()
    if text.startswith("OK "):
        print(text[3:])
        return 0
    print(f"Error: {text[4:] if text.startswith('ERR ') else 'supervisor died during boot'}",
          file=sys.stderr)
    return 1


def _send(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
        os.close(fd)
    except OSError:
        pass


def _daemon(cfg: SupervisorConfig, report_fd: int) -> None:
    """Detached supervisor: boot, report, serve until the container is gone."""
    log_path = os.path.join(os.path.dirname(cfg.state_file or "/tmp/x"), "supervisor.log")
    _redirect_stdio(log_path)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # PID 1's parent (the intermediate child) exits: we must inherit PID 1 to reap it.
    libc.prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    libc.set_process_name("lxmgr-sup")
    layout = detect()
    cgroups = cgroup_base.load(cfg.cgroup_driver, base=cfg.cgroup_base, layout=layout)
    _exclusive(cfg.socket)  # held (never closed) until this supervisor exits
    listener = _listen(cfg.socket)
    monitor = Monitor(cfg, cgroups)
    try:
        pid = monitor.boot()
    except (LxmgrError, OSError) as err:
        listener.close()
        os.unlink(cfg.socket)
        _send(report_fd, f"ERR {err}")
        os._exit(1)
    _send(report_fd, f"OK {pid}")
    try:
        monitor.serve(listener)
    finally:
        monitor.save_console_log()
        monitor.close_listener()


def _exclusive(socket_path: str) -> int:
    """An flock on supervisor.lock beside the control socket, held for the supervisor's
    life: a second supervisor of the same instance (two starts at once, two daemons on one
    state dir) refuses in one line instead of unlinking the first one's socket. The fd is
    close-on-exec: the container's processes do not keep it once they exec."""
    fd = os.open(os.path.join(os.path.dirname(socket_path), LOCK_FILE),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LxmgrError("The instance's supervisor is already running (another start won)") \
            from None
    return fd


def _listen(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _redirect_stdio(log_path: str) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown (~15 ms): the caller waits for our exit
