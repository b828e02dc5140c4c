"""What `lxmgr list` shows: lxc's column letters, filters, the no-lease hint (click-free).

Shared by the click verb (lxmgr.cli.commands.list) and the fast path (lxmgr.cli.fast).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxmgr.cli.terminal import format_size, format_time, parse_time, render

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from lxmgr.cli.app import App

DEFAULT_COLUMNS = "ns46tS"
# --all-projects with the default columns: PROJECT first, as lxc's defaultColumnsAllProjects.
ALL_PROJECTS_COLUMNS = "e" + DEFAULT_COLUMNS
ALL_PROJECTS_CONFLICT = "Can't specify --project with --all-projects"  # lxc's words


LEASE_GRACE_SECONDS = 5.0  # a start that has no IPv4 lease after this long gets the hint
NO_LEASE_HINT = "(no lease: lxmgr doctor)"


def global_addresses(network: dict[str, Any] | None, family: str) -> list[tuple[str, str]]:
    """(interface, address) of every global address of family, lo excluded, by interface."""
    found = []
    for iface, data in sorted((network or {}).items()):
        if iface == "lo":
            continue
        for addr in (data or {}).get("addresses") or []:
            if addr.get("family") == family and addr.get("scope") == "global":
                found.append((iface, str(addr.get("address"))))
    return found


def nic_names(inst: dict[str, Any]) -> list[str]:
    """Interface names of the instance's NIC devices (their `name`, else the device name)."""
    devices = inst.get("expanded_devices") or inst.get("devices") or {}
    return sorted(str(dev.get("name") or name) for name, dev in devices.items()
                  if (dev or {}).get("type") == "nic")


def seconds_without_lease(inst: dict[str, Any], state: dict[str, Any],
                          now: datetime | None = None) -> float | None:
    """Seconds since start when a running instance with a NIC still has no global IPv4
    address after LEASE_GRACE_SECONDS; None when that is not the case (or unknowable)."""
    status = str(state.get("status") or inst.get("status") or "")
    if status.lower() != "running" or not nic_names(inst):
        return None
    if global_addresses(state.get("network"), "inet"):
        return None
    started = parse_time(inst.get("last_used_at"))
    if started is None:
        return None
    age = ((now or datetime.now(UTC)) - started).total_seconds()
    return age if age > LEASE_GRACE_SECONDS else None


def _addresses(inst: dict[str, Any], family: str) -> str:
    """Global addresses of every interface but lo, 'ADDR (IFACE)' one per line (as lxc)."""
    lines = [f"{addr} ({iface})" for iface, addr in global_addresses(
        _state(inst).get("network"), family)]
    if not lines and family == "inet" and seconds_without_lease(inst, _state(inst)) is not None:
        return NO_LEASE_HINT
    return "\n".join(lines)


def _type(inst: dict[str, Any]) -> str:
    kind = str(inst.get("type") or "container").upper()
    return f"{kind} (EPHEMERAL)" if inst.get("ephemeral") else kind


def _state(inst: dict[str, Any]) -> dict[str, Any]:
    return inst.get("state") or {}


def _pid(inst: dict[str, Any]) -> str:
    pid = _state(inst).get("pid") or 0
    return str(pid) if pid else ""


def _cpu(inst: dict[str, Any]) -> str:
    usage = (_state(inst).get("cpu") or {}).get("usage")
    return f"{int(usage) // 1_000_000_000}s" if usage else ""


def _memory(inst: dict[str, Any]) -> str:
    usage = (_state(inst).get("memory") or {}).get("usage")
    return format_size(usage) if usage else ""


# letter -> (header, cell); LXD's `lxc list --columns` letters.
COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "n": ("NAME", lambda i: str(i.get("name", ""))),
    "s": ("STATE", lambda i: str(i.get("status", "")).upper()),
    "4": ("IPV4", lambda i: _addresses(i, "inet")),
    "6": ("IPV6", lambda i: _addresses(i, "inet6")),
    "t": ("TYPE", _type),
    "S": ("SNAPSHOTS", lambda i: str(len(i.get("snapshots") or []))),
    "p": ("PID", _pid),
    "P": ("PROFILES", lambda i: "\n".join(i.get("profiles") or [])),
    "m": ("MEMORY USAGE", _memory),
    "u": ("CPU USAGE", _cpu),
    "l": ("LAST USED AT", lambda i: format_time(i.get("last_used_at"))),
    "c": ("CREATED AT", lambda i: format_time(i.get("created_at"))),
    "e": ("PROJECT", lambda i: str(i.get("project", ""))),
}


def matches(inst: dict[str, Any], filters: tuple[str, ...]) -> bool:
    """lxc's filters: 'web' (name prefix or regex), 'key=value' (config or status)."""
    for spec in filters:
        key, sep, value = spec.partition("=")
        if not sep:
            name = str(inst.get("name", ""))
            if not (name.startswith(spec) or _regex_match(spec, name)):
                return False
            continue
        if key in ("status", "state"):
            actual = str(inst.get("status", ""))
        elif key in ("type", "name", "description"):
            actual = str(inst.get(key, ""))
        else:
            config = inst.get("expanded_config") or inst.get("config") or {}
            actual = str(config.get(key, config.get(f"user.{key}", "")))
        if actual.lower() != value.lower():
            return False
    return True


def _regex_match(pattern: str, name: str) -> bool:
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def build_rows(instances: list[dict[str, Any]], columns: str) -> tuple[list[str],
                                                                        list[list[str]]]:
    """Headers and rows for the column letters, sorted by name."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        from lxmgr.errors import InvalidConfig

        raise InvalidConfig(f"Unknown column '{unknown[0]}' (known: {''.join(COLUMNS)})")
    headers = [COLUMNS[c][0] for c in columns]
    rows = [[COLUMNS[c][1](inst) for c in columns] for inst in sorted(
        instances, key=lambda i: (str(i.get("project", "")), str(i.get("name", ""))))]
    return headers, rows


def list_instances(app: App, filters: tuple[str, ...] | list[str], fmt: str,
                   columns: str, *, all_projects: bool = False) -> None:
    """GET every instance with its state (of every project with all_projects), keep those
    matching filters, print them as fmt."""
    params: dict[str, Any] = {"recursion": 2}
    if all_projects:
        if app.project_override:
            from lxmgr.errors import InvalidConfig

            raise InvalidConfig(ALL_PROJECTS_CONFLICT)
        params["all-projects"] = True
        columns = ALL_PROJECTS_COLUMNS if columns == DEFAULT_COLUMNS else columns
    instances = app.query("GET", "/1.0/instances", params=params) or []
    selected = [i for i in instances if matches(i, tuple(filters))]
    headers, rows = build_rows(selected, columns)
    app.echo(render(fmt, headers, rows, selected))
