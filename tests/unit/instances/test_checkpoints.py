"""Checkpoints (lxmgr.instances.checkpoints): cancellation points, injected faults' hooks
and the progress an operation's work reports (LXD's `<stage>_progress` texts)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lxmgr.errors import Cancelled
from lxmgr.instances import checkpoints


def test_a_checkpoint_raises_once_the_operation_is_cancelled() -> None:
    token = threading.Event()
    reset = checkpoints.CANCEL.set(token)
    try:
        checkpoints.checkpoint("x.step")
        token.set()
        with pytest.raises(Cancelled, match="^Operation cancelled$"):
            checkpoints.checkpoint("x.step")
    finally:
        checkpoints.CANCEL.reset(reset)
    checkpoints.checkpoint("x.step")  # outside operations: nothing to cancel


def test_hooks_run_at_their_point_only_inside_the_block() -> None:
    seen: list[str] = []
    with checkpoints.on("x.a", lambda: seen.append("a")):
        checkpoints.checkpoint("x.a")
        checkpoints.checkpoint("x.b")
    checkpoints.checkpoint("x.a")
    assert seen == ["a"]


def test_byte_progress_reports_lxd_texts_a_few_times_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reports: list[dict[str, Any]] = []
    clock = iter([0.0, 0.1, 0.2, 0.5, 0.6, 1.0])
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: next(clock))
    reset = checkpoints.REPORT.set(reports.append)
    try:
        update = checkpoints.byte_progress("create_backup_progress")  # started at 0.0
        for done in (1000, 2_000_000, 5_000_000, 6_000_000, 10_000_000):
            update(done)
    finally:
        checkpoints.REPORT.reset(reset)
    assert reports == [{"create_backup_progress": "5.00MB (10.00MB/s)"},
                       {"create_backup_progress": "10.00MB (10.00MB/s)"}]
