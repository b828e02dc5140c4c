"""Run external commands: log the argv, raise errors.CommandError with the stderr tail.

Imports only lxmgr.errors. Synchronous for now (image builds run in a worker or the CLI);
an async run() joins later for the daemon.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence

from lxmgr.errors import Cancelled, CommandError

log = logging.getLogger(__name__)

STDERR_TAIL = 4096  # bytes of stderr kept in a CommandError


def _tail(text: str) -> str:
    return text[-STDERR_TAIL:]


def run(argv: Sequence[str], *, input: str | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run argv to completion, capturing text stdout and stderr.

    Raises CommandError when the command is missing, times out, or (with check) exits non-zero.
    """
    argv = [str(a) for a in argv]
    log.debug("run: %s", " ".join(argv))
    try:
        proc = subprocess.run(argv, input=input, env=dict(env) if env is not None else None,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as err:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from err
    except subprocess.TimeoutExpired as err:
        raise CommandError(argv, -1, f"Timed out after {timeout}s") from err
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, _tail(proc.stderr or proc.stdout))
    return proc


def stream(argv: Sequence[str], on_line: Callable[[str], None], *,
           env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
           grace: float = 10.0, cancel: threading.Event | None = None) -> None:
    """Run argv in a new session, calling on_line for each line of its merged stdout+stderr.

    If on_line or the wait raises (KeyboardInterrupt, SystemExit from a SIGTERM handler), or
    `cancel` is set, the command's process group gets SIGTERM, then SIGKILL after `grace`
    seconds, and is reaped before the exception (Cancelled for `cancel`) propagates. Raises
    CommandError with the output tail on failure.
    """
    argv = [str(a) for a in argv]
    log.debug("stream: %s", " ".join(argv))
    tail: list[str] = []
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace",
                                env=dict(env) if env is not None else None, cwd=cwd,
                                start_new_session=True)
    except FileNotFoundError as err:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from err
    finished = threading.Event()
    if cancel is not None:
        # A quiet command never returns to the read loop: a watcher stops its group.
        threading.Thread(target=_stop_on_cancel, args=(proc, cancel, finished, grace),
                         name=f"cancel-{proc.pid}", daemon=True).start()
    try:
        for raw in proc.stdout or ():
            line = raw.rstrip("\n")
            tail = (tail + [line])[-20:]
            on_line(line)
        proc.wait()
    except BaseException:
        _stop_group(proc, grace)
        raise
    finally:
        finished.set()
        if proc.stdout:
            proc.stdout.close()
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Cancelled: {os.path.basename(argv[0])} was stopped")
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, _tail("\n".join(tail)))


def _stop_on_cancel(proc: subprocess.Popen[str], cancel: threading.Event,
                    finished: threading.Event, grace: float) -> None:
    while not finished.is_set():
        if cancel.wait(0.1):
            if not finished.is_set():
                _stop_group(proc, grace)
            return


def _stop_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM, then SIGKILL, the process group we created for proc (its pgid is its pid)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
