"""Network drivers: the NetworkDriver ABC and the DRIVERS registry (C4).

A driver owns everything of one managed network on the host: its link(s), its nft table,
its dnsmasq and its state directory paths.root()/networks/<name>/. The caller (instances,
daemon) owns the stored config and decides when to call create/start/delete. Imports
lxmgr.model, lxmgr.errors and lxmgr.paths.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from lxmgr.errors import UnknownDriver
from lxmgr.model import network as model

BUILTIN = ("bridge",)  # modules under lxmgr.net that register a driver
DRIVERS: dict[str, type[NetworkDriver]] = {}
DEFAULT_NETWORK = "lxmgrbr0"  # created with ipv4.address=auto on first start, as lxdbr0


def load(kind: str) -> type[NetworkDriver]:
    """The driver class for a network type ('bridge'); UnknownDriver otherwise."""
    if kind in BUILTIN and kind not in DRIVERS:
        importlib.import_module(f"lxmgr.net.{kind}")
    try:
        return DRIVERS[kind]
    except KeyError:
        raise UnknownDriver(f"Unknown network type '{kind}'") from None


class NetworkDriver(ABC):
    """One managed network. Methods are synchronous and may block (run them in a thread).

    Every method acts in the caller's network namespace and is safe to repeat.
    """

    type: ClassVar[str]
    managed: ClassVar[bool] = True  # lxmgr creates and deletes the link itself

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            DRIVERS[cls.type] = cls

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        self.name = model.validate_network_name(name)
        self.config = dict(config)

    @classmethod
    @abstractmethod
    def plan_config(cls, name: str, config: Mapping[str, object],
                    others: Mapping[str, Mapping[str, str]] | None = None,
                    host: list[model.Taken] | None = None) -> dict[str, str]:
        """Validate config and resolve `auto` values; the result is what gets stored."""

    @property
    @abstractmethod
    def state_dir(self) -> Path: ...

    @abstractmethod
    def create(self) -> None:
        """Create everything; on failure nothing is left (revert stack)."""

    @abstractmethod
    def start(self) -> None:
        """Bring everything back (after a daemon or host restart, or a config change)."""

    @abstractmethod
    def stop_services(self) -> None:
        """Stop the network's processes (daemon shutdown keeps links and rules)."""

    @abstractmethod
    def delete(self) -> None:
        """Remove everything the network owns; a no-op for parts already gone."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """LXD's /1.0/networks/<name>/state body."""

    @abstractmethod
    def leases(self) -> list[Any]:
        """Current DHCP leases."""

    @abstractmethod
    def reserve(self, mac: str, ip: str, hostname: str | None = None) -> None:
        """Give mac the static address ip (and DNS name hostname.<dns.domain>)."""

    @abstractmethod
    def release(self, mac: str) -> None:
        """Drop mac's static reservation (a no-op when it has none)."""

    @abstractmethod
    def reload(self) -> None:
        """Make running services re-read reservations."""
