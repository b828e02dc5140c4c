"""Operations' on_cancel hook (LXD's onCancel): run when a client cancels, not when the daemon
stops (token operations revoke their token on the first, keep it for the next start on the
second)."""

from __future__ import annotations

import asyncio
from typing import Any

from lxmgr.api.operation import Operation
from lxmgr.instances.events import EventBus
from lxmgr.instances.operations import Operations


class MemoryDb:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def operation_put(self, op: dict[str, Any]) -> None:
        self.rows.append(op)

    def operations_prune(self, keep: int) -> None:
        pass

    def operations(self) -> list[dict[str, Any]]:
        return self.rows


async def _forever(_op: Operation) -> None:
    await asyncio.Event().wait()


async def test_cancel_runs_the_hook_shutdown_does_not() -> None:
    ops = Operations(MemoryDb(), EventBus())  # type: ignore[arg-type]
    hooked: list[str] = []

    async def hook(op: Operation) -> None:
        hooked.append(op.id)

    cancelled = ops.create("token", _forever, class_="token", may_cancel=True, on_cancel=hook)
    stopped = ops.create("token", _forever, class_="token", may_cancel=True, on_cancel=hook)
    await asyncio.sleep(0)
    ops.cancel(cancelled.id)
    done = await ops.wait(cancelled.id, 5)
    assert isinstance(done, Operation) and done.status == "Cancelled"
    await ops.shutdown()
    assert stopped.status == "Cancelled"
    assert hooked == [cancelled.id]
    assert not ops.on_cancel and not ops.cancelled
