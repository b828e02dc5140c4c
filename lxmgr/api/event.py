"""PURE LXD events (`/1.0/events` messages) and the lifecycle event builder.

Must not import anything but lxmgr.api and the stdlib; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lxmgr.api.operation import format_time

EventType = Literal["operation", "lifecycle", "logging"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Event:
    """One message on the events websocket (sent as one JSON text frame)."""

    type: EventType
    timestamp: datetime = field(default_factory=_now)
    metadata: dict[str, Any] = field(default_factory=dict)
    location: str = "none"
    project: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "timestamp": format_time(self.timestamp),
            "metadata": self.metadata,
            "location": self.location,
            "project": self.project,
        }


UNIX_REQUESTOR = {"username": "root", "protocol": "unix", "address": "@"}


def lifecycle(action: str, source: str, context: dict[str, Any] | None = None,
              requestor: dict[str, str] | None = None, project: str = "default") -> Event:
    """A lifecycle event: lifecycle("instance-started", "/1.0/instances/c1"); requestor is
    who asked (LXD's: a TLS client is its certificate fingerprint, protocol tls and its
    address), the unix socket's root by default. Outside `default` the source carries
    `?project=NAME`, as LXD's."""
    name = source.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
    metadata = {
        "action": action,
        "source": source,
        "context": dict(context or {}),
        "requestor": dict(requestor or UNIX_REQUESTOR),
        "name": name,
        "project": project,
    }
    return Event("lifecycle", metadata=metadata, project=project)
