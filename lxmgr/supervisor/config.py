"""What the manager hands a supervisor (SupervisorConfig, JSON next to the instance) and the
console ring it keeps. Imports runtime's plan and the protocol's version only: the
supervisor's own start-up path."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field

from lxmgr.runtime.plan import RuntimePlan
from lxmgr.supervisor.protocol import PROTOCOL_VERSION

CONSOLE_RING = 256 * 1024


@dataclass
class SupervisorConfig:
    """What the manager hands the supervisor (written as JSON next to the instance)."""

    plan: RuntimePlan
    cgroup_driver: str
    cgroup_base: str
    limits: dict[str, str] = field(default_factory=dict)
    socket: str = ""
    state_file: str = ""
    console_log: str = ""
    tty_count: int = 1
    nics_file: str = ""  # NIC specs for `python -m lxmgr.net.attach` after a reboot
    # The manager plugs the NICs itself right after the first boot (it has pyroute2 loaded,
    # so the link appears ~200 ms sooner); the hook then runs on reboots only.
    manager_attaches_first_boot: bool = False
    proxies_file: str = ""  # proxy devices for `python -m lxmgr.net.relay` after each boot
    protocol: int = PROTOCOL_VERSION  # of the daemon that wrote it

    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "plan"}
        data["plan"] = json.loads(self.plan.to_json())
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SupervisorConfig:
        """ValueError for a config of a newer protocol than this supervisor speaks (a
        downgraded lxmgr starting an instance the newer one configured)."""
        data = json.loads(text)
        version = int(data.get("protocol", 1))
        if version > PROTOCOL_VERSION:
            raise ValueError(f"written for supervisor protocol {version}, this lxmgr speaks "
                             f"{PROTOCOL_VERSION}: upgrade lxmgr, or start the instance "
                             "again from this version's daemon")
        data["plan"] = RuntimePlan.from_json(json.dumps(data["plan"]))
        return cls(**data)


class ConsoleRing:
    """The last CONSOLE_RING bytes written to the container's console."""

    def __init__(self, size: int = CONSOLE_RING) -> None:
        self.size = size
        self.chunks: collections.deque[bytes] = collections.deque()
        self.length = 0

    def append(self, data: bytes) -> None:
        self.chunks.append(data)
        self.length += len(data)
        while self.length - len(self.chunks[0]) >= self.size:
            self.length -= len(self.chunks.popleft())

    def read(self) -> bytes:
        return b"".join(self.chunks)[-self.size:]

    def clear(self) -> None:
        self.chunks.clear()
        self.length = 0
