"""PURE LXD Operation object (`shared/api/operation.go`) and its JSON form.

The daemon owns operation lifecycles (lxmgr.instances); this is only the value and its wire
shape. Must not import anything but lxmgr.api and the stdlib; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lxmgr.api.envelope import FINAL_CODES, PENDING, status_text

OperationClass = Literal["task", "websocket", "token"]


def format_time(moment: datetime) -> str:
    """RFC 3339 with a 'Z' suffix for UTC, as Go's time.RFC3339Nano prints it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Operation:
    """A background task (or websocket session) as LXD reports it."""

    id: str
    class_: OperationClass = "task"
    description: str = ""
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    status_code: int = PENDING
    resources: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    may_cancel: bool = False
    err: str = ""
    err_code: int = 0  # the HTTP status matching the failure (LXD's optional err_code)
    location: str = "none"
    # The project the operation acts in: LXD lists operations per project but its
    # api.Operation has no such field, so to_dict() leaves it out.
    project: str = "default"

    @property
    def status(self) -> str:
        """LXD's display string of status_code ('Running', 'Success', ...)."""
        return status_text(self.status_code)

    @property
    def url(self) -> str:
        return f"/1.0/operations/{self.id}"

    @property
    def is_final(self) -> bool:
        """True once the operation succeeded, failed or was cancelled."""
        return self.status_code in FINAL_CODES

    def to_dict(self) -> dict[str, Any]:
        """The JSON object clients see (key `class`, RFC 3339 times)."""
        return {
            "id": self.id,
            "class": self.class_,
            "description": self.description,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "status": self.status,
            "status_code": self.status_code,
            "resources": {kind: list(urls) for kind, urls in self.resources.items()},
            "metadata": dict(self.metadata),
            "may_cancel": self.may_cancel,
            "err": self.err,
            "location": self.location,
        } | ({"err_code": self.err_code} if self.err_code else {})
