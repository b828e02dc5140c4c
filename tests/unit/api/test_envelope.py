"""Envelope, Operation and Event shapes match LXD's wire format."""

from __future__ import annotations

from datetime import UTC, datetime

from lxmgr.api.envelope import (
    STATUS_TEXT,
    async_response,
    error_response,
    status_text,
    sync_response,
)
from lxmgr.api.event import Event, lifecycle
from lxmgr.api.operation import Operation, format_time

KEYS = {"type", "status", "status_code", "operation", "error_code", "error", "metadata"}
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_sync_envelope() -> None:
    env = sync_response({"a": 1})
    assert env == {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
                   "error_code": 0, "error": "", "metadata": {"a": 1}}


def test_async_envelope_points_at_the_operation() -> None:
    op = Operation("abc", created_at=T0, updated_at=T0).to_dict()
    env = async_response(op)
    assert set(env) == KEYS
    assert env["type"] == "async"
    assert env["status"] == "Operation created" and env["status_code"] == 100
    assert env["operation"] == "/1.0/operations/abc"
    assert env["metadata"] is op


def test_error_envelope() -> None:
    env = error_response("Instance not found", 404)
    assert set(env) == KEYS
    assert env["type"] == "error" and env["error_code"] == 404
    assert env["error"] == "Instance not found" and env["metadata"] is None


def test_status_table_matches_lxd() -> None:
    assert STATUS_TEXT[100] == "Operation created"
    assert (STATUS_TEXT[102], STATUS_TEXT[103], STATUS_TEXT[110]) == ("Stopped", "Running",
                                                                      "Frozen")
    assert (STATUS_TEXT[200], STATUS_TEXT[400], STATUS_TEXT[401]) == ("Success", "Failure",
                                                                      "Cancelled")
    assert status_text(999) == "Unknown"


def test_operation_to_dict() -> None:
    op = Operation("u1", class_="websocket", description="Executing command", created_at=T0,
                   updated_at=T0, status_code=103, resources={"instances": ["/1.0/instances/c1"]},
                   metadata={"fds": {"0": "s"}}, may_cancel=True)
    data = op.to_dict()
    assert data == {
        "id": "u1", "class": "websocket", "description": "Executing command",
        "created_at": "2026-01-02T03:04:05.678000Z", "updated_at": "2026-01-02T03:04:05.678000Z",
        "status": "Running", "status_code": 103, "resources": {"instances": ["/1.0/instances/c1"]},
        "metadata": {"fds": {"0": "s"}}, "may_cancel": True, "err": "", "location": "none",
    }
    assert not op.is_final and op.url == "/1.0/operations/u1"
    op.status_code = 400
    assert op.is_final and op.status == "Failure"


def test_naive_times_are_utc() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"


def test_event_and_lifecycle() -> None:
    event = lifecycle("instance-started", "/1.0/instances/c1", {"reason": "x"})
    data = event.to_dict()
    assert data["type"] == "lifecycle"
    assert data["location"] == "none" and data["project"] == "default"
    assert data["metadata"]["action"] == "instance-started"
    assert data["metadata"]["source"] == "/1.0/instances/c1"
    assert data["metadata"]["context"] == {"reason": "x"}
    assert data["metadata"]["name"] == "c1"
    assert data["timestamp"].endswith("Z")
    assert Event("logging", T0, {"message": "m"}).to_dict()["timestamp"] == \
        "2026-01-02T03:04:05.678000Z"
