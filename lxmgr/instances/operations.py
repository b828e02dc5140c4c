"""Operations: LXD's handle on anything that takes time. Each runs as a named asyncio task
(blocking work in a worker thread), reports progress in its metadata, can be waited on,
cancelled when it says so, and is kept for a while after it ends (also in the database).

Cancelling sets the operation's token (lxmgr.instances.checkpoints: the work's next
checkpoint raises Cancelled and its undo runs) and cancels its task; work run through
checkpoints.in_thread is awaited to its end, so a cancelled operation is reported only
once what it did is undone."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from lxmgr.api import envelope
from lxmgr.api.event import Event
from lxmgr.api.operation import Operation
from lxmgr.errors import Cancelled, InvalidState, LxmgrError, NotFound
from lxmgr.instances.checkpoints import CANCEL, REPORT
from lxmgr.instances.db import Database
from lxmgr.instances.events import PROJECT, EventBus
from lxmgr.model.project import DEFAULT, shown

log = logging.getLogger(__name__)
RETENTION = 300.0  # seconds a finished operation stays in memory for late waiters
KEEP_IN_DB = 200
PROJECT_FIELD = "_project"  # the project of a recorded operation (not sent to clients)

Work = Callable[[Operation], Awaitable[Any]]
CancelHook = Callable[[Operation], Awaitable[None]]


class Operations:
    """The registry of operations; create() starts one, the routes query and wait."""

    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db
        self.events = events
        self.ops: dict[str, Operation] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.on_cancel: dict[str, CancelHook] = {}
        self.cancelled: set[str] = set()  # ids cancelled by a client (not by daemon stop)
        self.tokens: dict[str, threading.Event] = {}  # cancel tokens of running operations

    def create(self, description: str, work: Work, *, resources: dict[str, list[str]] |
               None = None, class_: str = "task", may_cancel: bool = False,
               metadata: dict[str, Any] | None = None,
               on_cancel: CancelHook | None = None) -> Operation:
        """Register an operation and start `work(op)` in the background. `on_cancel(op)` runs
        after `work` was cancelled by cancel() (a client's DELETE), not at daemon stop (as
        LXD's onCancel hook)."""
        op = Operation(id=str(uuid.uuid4()), class_=class_,  # type: ignore[arg-type]
                       description=description, resources=resources or {},
                       metadata=metadata or {}, may_cancel=may_cancel,
                       status_code=envelope.RUNNING, project=PROJECT.get())
        self.ops[op.id] = op
        self.done[op.id] = asyncio.Event()
        if on_cancel is not None:
            self.on_cancel[op.id] = on_cancel
        self.tokens[op.id] = threading.Event()
        self.tasks[op.id] = asyncio.create_task(self._run(op, work), name=f"op-{op.id}")
        self.publish(op)
        return op

    async def _run(self, op: Operation, work: Work) -> None:
        CANCEL.set(self.tokens[op.id])  # this task's context: its worker threads see it
        loop = asyncio.get_running_loop()
        REPORT.set(lambda metadata: loop.call_soon_threadsafe(self._progress, op, metadata))
        try:
            result = await work(op)
            if isinstance(result, dict):
                op.metadata.update(result)
            op.status_code = envelope.SUCCESS
        except (asyncio.CancelledError, Cancelled):
            op.status_code, op.err = envelope.CANCELLED, "Operation cancelled"
            await self._cancelled(op)
        except LxmgrError as err:
            op.status_code, op.err_code = envelope.FAILURE, err.status
            op.err = shown(op.project, str(err))
        except Exception as err:  # noqa: BLE001 - a bug: report it, keep the daemon up
            log.exception("Operation %s (%s) failed", op.id, op.description)
            op.status_code, op.err = envelope.FAILURE, f"Internal error: {err}"
            op.err_code = 500
        finally:
            self._finish(op)

    async def _cancelled(self, op: Operation) -> None:
        hook = self.on_cancel.get(op.id)
        if hook is None or op.id not in self.cancelled:
            return
        try:
            await hook(op)
        except Exception as err:  # noqa: BLE001 - the operation is cancelled either way
            log.warning("Cancel hook of operation %s failed: %s", op.id, err)

    def _finish(self, op: Operation) -> None:
        op.updated_at = datetime.now(UTC)
        self.tasks.pop(op.id, None)
        self.tokens.pop(op.id, None)
        self.on_cancel.pop(op.id, None)
        self.cancelled.discard(op.id)
        self.done[op.id].set()
        self.publish(op)
        try:
            self.db.operation_put({**op.to_dict(), PROJECT_FIELD: op.project})
            self.db.operations_prune(KEEP_IN_DB)
        except Exception as err:  # noqa: BLE001 - history is best effort
            log.warning("Could not record operation %s: %s", op.id, err)
        asyncio.get_running_loop().call_later(RETENTION, self._forget, op.id)

    def _forget(self, op_id: str) -> None:
        self.ops.pop(op_id, None)
        self.done.pop(op_id, None)

    def publish(self, op: Operation) -> None:
        self.events.publish(Event("operation", metadata=op.to_dict(), project=op.project))

    def _progress(self, op: Operation, metadata: dict[str, Any]) -> None:
        if not op.is_final:  # a late report of work that ended meanwhile
            self.update(op, **metadata)

    def update(self, op: Operation, **metadata: Any) -> None:
        """Progress from the event loop: merge metadata, tell the listeners."""
        op.metadata.update(metadata)
        op.updated_at = datetime.now(UTC)
        self.publish(op)

    def get(self, op_id: str) -> Operation | dict[str, Any]:
        if op_id in self.ops:
            return self.ops[op_id]
        for stored in self.db.operations():
            if stored["id"] == op_id:
                return {k: v for k, v in stored.items() if k != PROJECT_FIELD}
        raise NotFound("Operation not found")

    def project_of(self, op_id: str) -> str:
        """The project an operation acts in (NotFound for an unknown id)."""
        if op_id in self.ops:
            return self.ops[op_id].project
        for stored in self.db.operations():
            if stored["id"] == op_id:
                return str(stored.get(PROJECT_FIELD, DEFAULT))
        raise NotFound("Operation not found")

    def all(self, project: str | None = None) -> list[dict[str, Any]]:
        """Live operations first, then the recorded history not in memory any more; those
        of one project, or of all (None)."""
        live = [op.to_dict() for op in self.ops.values()
                if project is None or op.project == project]
        seen = {op.id for op in self.ops.values()}
        return live + [{k: v for k, v in op.items() if k != PROJECT_FIELD}
                       for op in self.db.operations() if op["id"] not in seen and (
                           project is None or op.get(PROJECT_FIELD, DEFAULT) == project)]

    async def wait(self, op_id: str, timeout: float | None) -> Operation | dict[str, Any]:
        found = self.get(op_id)
        done = self.done.get(op_id)
        if isinstance(found, Operation) and done is not None and not found.is_final:
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except TimeoutError:
                pass
        return found

    def cancel(self, op_id: str) -> None:
        found = self.get(op_id)
        if not isinstance(found, Operation) or found.is_final:
            raise InvalidState("Operation is already done")
        if not found.may_cancel:
            raise InvalidState("This operation can't be cancelled")
        task = self.tasks.get(op_id)
        if task is not None:
            self.cancelled.add(op_id)
            self.tokens[op_id].set()
            task.cancel()

    async def shutdown(self) -> None:
        """Cancel what still runs (daemon stop); containers are not affected."""
        tasks = list(self.tasks.values())
        for token in self.tokens.values():
            token.set()  # what can be undone is undone; the rest finishes
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
