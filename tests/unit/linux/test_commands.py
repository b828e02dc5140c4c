"""commands.stream: a set cancel event stops a quiet command's process group at once."""

from __future__ import annotations

import threading
import time

import pytest

from lxmgr.errors import Cancelled, CommandError
from lxmgr.linux import commands


def test_cancel_stops_a_quiet_command_and_its_children() -> None:
    cancel = threading.Event()
    pids: list[str] = []

    def on_line(line: str) -> None:  # cancel once the child said who it is
        pids.append(line)
        threading.Timer(0.2, cancel.set).start()

    started = time.monotonic()
    with pytest.raises(Cancelled, match="sh was stopped"):
        # The child sleeps without printing: only the watcher can stop it.
        commands.stream(["sh", "-c", "sleep 30 & echo $!; wait"], on_line, cancel=cancel)
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5  # SIGTERM reached the grandchild; it may take a moment
    while _alive(int(pids[0])) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(int(pids[0]))  # the grandchild went with the group


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_unset_cancel_changes_nothing() -> None:
    lines: list[str] = []
    commands.stream(["sh", "-c", "echo one; echo two"], lines.append, cancel=threading.Event())
    assert lines == ["one", "two"]
    with pytest.raises(CommandError, match="status 3: bad"):
        commands.stream(["sh", "-c", "echo bad; exit 3"], lines.append,
                        cancel=threading.Event())
