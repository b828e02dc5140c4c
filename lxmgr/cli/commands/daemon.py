"""`lxmgr daemon start|stop|status|shutdown`: run lxmgrd detached, with a pid file and a log;
`shutdown` stops the instances in order through the API, then lxmgrd (host shutdown).

The others do not need the API except to see that a started daemon answers. The daemon runs as
`python -P -m lxmgr.daemon` (what the `lxmgrd` script runs) with this interpreter, in its own
session, so it outlives the shell and never imports from the caller's directory (it then
moves to / itself); its output goes to $LXMGR_DIR/logs/lxmgrd.log. `status` answers with
LSB's exit codes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from lxmgr.cli.app import App
from lxmgr.cli.options import get_app

DEFAULT_DIR = "/var/lib/lxmgr"


def state_dir() -> Path:
    return Path(os.environ.get("LXMGR_DIR") or DEFAULT_DIR)


def pid_file() -> Path:
    return state_dir() / "lxmgrd.pid"


def log_file() -> Path:
    return state_dir() / "logs" / "lxmgrd.log"


# Exit codes of `status`: LSB's for an init script's status action (LSB Core 5.0,
# "Init Script Actions": refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/
# LSB-Core-generic/iniscrptact.html), which systemctl status also follows.
STATUS_RUNNING = 0
STATUS_DEAD_PIDFILE = 1  # "program is dead and /var/run pid file exists"
STATUS_STOPPED = 3  # "program is not running"
STATUS_UNKNOWN = 4  # "program or service status is unknown"

def daemon_argv() -> list[str]:
    """lxmgrd with this interpreter; -P: the caller's directory is not put on sys.path
    (`python -m` puts it first, and a directory named lxmgr there would be imported)."""
    return [sys.executable, "-P", "-m", "lxmgr.daemon"]


def read_pid() -> int | None:
    """The pid in the pid file when that process is alive and is lxmgrd, else None."""
    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_lxmgrd(pid) else None


def _is_lxmgrd(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"lxmgr" in cmdline and not _is_zombie(pid)  # not a recycled pid


def answers(app: App) -> bool:
    """True when GET /1.0 succeeds on the socket."""
    return _probe(app) is True


def _log_tail(lines: int = 5) -> str:
    try:
        text = log_file().read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@click.group()
def daemon() -> None:
    """Start, stop and check lxmgrd (without systemd); shut the instances down.

    \b
    Examples:
      lxmgr daemon start
      lxmgr daemon status
      lxmgr daemon stop
      lxmgr daemon shutdown
    """


@daemon.command()
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the API to answer.")
def start(timeout: float) -> None:
    """Start lxmgrd in the background and wait until it answers.

    \b
    Examples:
      lxmgr daemon start
      LXMGR_DIR=/tmp/lxmgr-test lxmgr daemon start
    """
    import subprocess

    app = get_app()
    pid = read_pid()
    if pid is not None or answers(app):
        app.echo(f"lxmgrd is already running{f' (pid {pid})' if pid else ''}")
        return
    log_file().parent.mkdir(parents=True, exist_ok=True)
    with open(log_file(), "ab") as log:
        proc = subprocess.Popen(daemon_argv(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    tmp = pid_file().with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    tmp.replace(pid_file())
    deadline = time.monotonic() + timeout
    while not answers(app):
        if proc.poll() is not None:
            pid_file().unlink(missing_ok=True)
            tail = _log_tail(1)
            app.abort(f"lxmgrd exited with status {proc.returncode}"
                      f"{f': {tail}' if tail else ''} (log: {log_file()})")
        if time.monotonic() > deadline:
            app.abort(f"lxmgrd (pid {proc.pid}) did not answer on {app.client.socket_path} "
                      f"within {timeout:g}s (log: {log_file()})")
        time.sleep(0.05)
    app.echo(f"lxmgrd started (pid {proc.pid})")


@daemon.command()
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for lxmgrd to exit.")
def stop(timeout: float) -> None:
    """Stop lxmgrd (SIGTERM) and wait for it to exit; containers keep running.

    \b
    Examples:
      lxmgr daemon stop
    """
    app = get_app()
    pid = read_pid()
    if pid is None:
        pid_file().unlink(missing_ok=True)
        app.echo("lxmgrd is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        if time.monotonic() > deadline:
            app.abort(f"lxmgrd (pid {pid}) did not exit within {timeout:g}s")
        time.sleep(0.05)
    pid_file().unlink(missing_ok=True)
    app.echo(f"lxmgrd stopped (pid {pid})")


@daemon.command()
@click.option("--timeout", type=float, default=0, show_default=True,
              help="Seconds to wait for the instances to stop (0: as long as it takes).")
def shutdown(timeout: float) -> None:
    """Stop every running instance in order, then lxmgrd (at host shutdown).

    As `lxd shutdown` (PUT /internal/shutdown): instances stop in
    boot.stop.priority order, highest first, those of equal priority in
    parallel; each gets boot.host_shutdown_timeout seconds (default 30) to
    shut down cleanly before it is killed. Each is recorded as running, so the
    next lxmgrd start brings it back unless boot.autostart=false. Then lxmgrd
    exits. systemd/lxmgr-startup.service runs this when the host shuts down;
    `lxmgr daemon stop` instead leaves the instances running.

    \b
    Examples:
      lxmgr daemon shutdown
      lxmgr daemon shutdown --timeout 600
    """
    from lxmgr.client import Client
    from lxmgr.client.rest import DaemonNotRunning

    app = get_app()
    pid = read_pid()
    socket_path = app.client.socket_path
    try:
        with Client(socket_path, timeout=timeout or None) as client:
            result = client.query("PUT", "/internal/shutdown") or {}
    except DaemonNotRunning:
        app.abort(f"lxmgrd is not running (socket {socket_path}): nothing was stopped")
    except TimeoutError:
        app.abort(f"lxmgrd did not finish the shutdown within {timeout:g}s (it goes on)")
    stopped = result.get("stopped") or []
    app.echo(f"Stopped {len(stopped)} instance(s){': ' if stopped else ''}"
             f"{', '.join(stopped)}; lxmgrd exits")
    if pid is not None:  # started by `lxmgr daemon start`: its pid file goes with it
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and not _is_zombie(pid) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_file().unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


@daemon.command()
def status() -> None:
    """Print whether lxmgrd is running; exit with LSB's status codes.

    \b
    Exit status: 0 running, 1 dead with a pid file left, 3 stopped,
    4 unknown (the pid file or the socket cannot be read).

    \b
    Examples:
      lxmgr daemon status
    """
    app = get_app()
    try:
        text = pid_file().read_text()
    except FileNotFoundError:
        text = None
    except OSError as err:
        app.echo(f"unknown (cannot read {pid_file()}: {err.strerror or err})")
        raise SystemExit(STATUS_UNKNOWN) from None
    pid = int(text.strip()) if text and text.strip().isdigit() else None
    if pid is not None and _is_lxmgrd(pid):
        app.echo(f"running (pid {pid}, socket {app.client.socket_path})")
        return
    probe = _probe(app)
    if probe is True:
        app.echo(f"running (socket {app.client.socket_path}; not started by lxmgr daemon start)")
    elif probe is not False:
        app.echo(f"unknown (socket {app.client.socket_path}: {probe})")
        raise SystemExit(STATUS_UNKNOWN)
    elif text is not None:
        held = f"pid {pid} is not running" if pid else "no pid in it"
        app.echo(f"dead ({pid_file()} is left: {held})")
        raise SystemExit(STATUS_DEAD_PIDFILE)
    else:
        app.echo("stopped")
        raise SystemExit(STATUS_STOPPED)


def _probe(app: App) -> bool | str:
    """True when GET /1.0 succeeds, False when nothing listens on the socket, else why the
    socket could not tell (permission denied, no answer)."""
    from lxmgr.client import Client
    from lxmgr.client.rest import DaemonNotRunning
    from lxmgr.errors import LxmgrError

    try:
        with Client(app.client.socket_path, timeout=2.0) as client:
            client.query("GET", "/1.0")
    except DaemonNotRunning:
        return False
    except LxmgrError as err:
        return str(err)
    except OSError as err:
        return err.strerror or type(err).__name__
    return True
