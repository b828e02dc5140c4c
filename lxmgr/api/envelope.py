"""PURE LXD response envelopes (`shared/api/response.go`) and the status code table.

Must not import anything but the stdlib; no I/O.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from typing import Any


# LXD's shared/api/status_code.go: code -> display string.
STATUS_TEXT: dict[int, str] = {
    100: "Operation created",
    101: "Started",
    102: "Stopped",
    103: "Running",
    104: "Cancelling",
    105: "Pending",
    106: "Starting",
    107: "Stopping",
    108: "Aborting",
    109: "Freezing",
    110: "Frozen",
    111: "Thawed",
    112: "Error",
    113: "Ready",
    200: "Success",
    400: "Failure",
    401: "Cancelled",
}

OPERATION_CREATED = 100
STOPPED = 102
RUNNING = 103
CANCELLING = 104
PENDING = 105
FROZEN = 110
SUCCESS = 200
FAILURE = 400
CANCELLED = 401

# An operation in one of these states is over (its `err` is set on Failure).
FINAL_CODES = frozenset({SUCCESS, FAILURE, CANCELLED})


def status_text(code: int) -> str:
    """LXD's display string for a status code ('Running'); 'Unknown' for others."""
    return STATUS_TEXT.get(code, "Unknown")


def sync_response(metadata: Any, status_code: int = SUCCESS) -> dict[str, Any]:
    """A `type: sync` envelope; status_code is LXD's (200 Success), not the HTTP status."""
    return {
        "type": "sync",
        "status": status_text(status_code),
        "status_code": status_code,
        "operation": "",
        "error_code": 0,
        "error": "",
        "metadata": metadata,
    }


def async_response(operation: dict[str, Any]) -> dict[str, Any]:
    """A `type: async` envelope (HTTP 202, Location: the operation URL) around an Operation."""
    return {
        "type": "async",
        "status": status_text(OPERATION_CREATED),
        "status_code": OPERATION_CREATED,
        "operation": f"/1.0/operations/{operation['id']}",
        "error_code": 0,
        "error": "",
        "metadata": operation,
    }


def error_response(message: str, code: int) -> dict[str, Any]:
    """A `type: error` envelope; code is also the HTTP status."""
    return {
        "type": "error",
        "status": "",
        "status_code": 0,
        "operation": "",
        "error_code": code,
        "error": message,
        "metadata": None,
    }
