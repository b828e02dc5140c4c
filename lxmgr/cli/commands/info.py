"""`lxmgr info`: status and resource usage of one instance (like `lxc info`), each
usage beside its limit."""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.listing import nic_names, seconds_without_lease
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import format_size, format_time


def render_info(inst: dict[str, Any], state: dict[str, Any]) -> str:
    """lxc info's layout: header fields, then Resources (processes, CPU, memory, network)."""
    lines = [
        f"Name: {inst.get('name', '')}",
        f"Description: {inst.get('description', '')}",
        f"Status: {str(state.get('status') or inst.get('status', '')).upper()}",
        f"Type: {inst.get('type', 'container')}{' (ephemeral)' if inst.get('ephemeral') else ''}",
        f"Architecture: {inst.get('architecture', '')}",
    ]
    if state.get("pid"):
        lines.append(f"PID: {state['pid']}")
    lines += [f"Created: {format_time(inst.get('created_at'))}",
              f"Last Used: {format_time(inst.get('last_used_at'))}",
              f"Profiles: {', '.join(inst.get('profiles') or [])}"]
    if state.get("pid"):
        lines += _resources(inst, state)
    lines += _snapshots(inst.get("snapshots") or [])
    return "\n".join(lines)


def _snapshots(snapshots: list[dict[str, Any]]) -> list[str]:
    """lxc info's Snapshots table: name, taken at, expires at, stateful."""
    if not snapshots:
        return []
    from lxmgr.cli.terminal import render_table

    rows = [[str(s.get("name", "")), format_time(s.get("created_at")),
             format_time(s.get("expires_at")) if not str(s.get("expires_at", "")).startswith(
                 "0001") else "", "YES" if s.get("stateful") else "NO"] for s in snapshots]
    return ["", "Snapshots:", render_table(["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"],
                                           rows)]


def _resources(inst: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """lxc info's Resources section; each usage with its limit from the expanded config."""
    config = inst.get("expanded_config") or {}
    lines = ["", "Resources:",
             f"  Processes: {state.get('processes', 0)} ({processes_limit(config)})"]
    cpu = (state.get("cpu") or {}).get("usage")
    if cpu is not None:
        lines += ["  CPU usage:", f"    CPU usage (in seconds): {format_cpu_seconds(cpu)} "
                                  f"({cpu_limit(config)})"]
    memory = state.get("memory") or {}
    lines += ["  Memory usage:", f"    Memory (current): {format_size(memory.get('usage') or 0)}"
                                 f" ({memory_limit(config, memory)})"]
    for key, label in (("usage_peak", "Memory (peak)"), ("swap_usage", "Swap (current)"),
                       ("swap_usage_peak", "Swap (peak)")):
        if memory.get(key):
            lines.append(f"    {label}: {format_size(memory[key])}")
    lines += _network(state.get("network") or {})
    lines += _lease_hint(inst, state)
    return lines


def format_cpu_seconds(nanoseconds: int | float) -> str:
    """CPU time as seconds with two decimals (lxc prints whole seconds: 0.9 s would be 0)."""
    return f"{nanoseconds / 1e9:.2f}"


def processes_limit(config: dict[str, str]) -> str:
    """'limit N' from limits.processes, else 'unlimited'."""
    value = config.get("limits.processes")
    return f"limit {value}" if value else "unlimited"


def cpu_limit(config: dict[str, str]) -> str:
    """limits.cpu (a count or pinned CPUs) and a hard limits.cpu.allowance (quota/period)
    as 'limit ...', a percentage allowance as the soft limit it is; else 'unlimited'."""
    from lxmgr.errors import InvalidConfig
    from lxmgr.model.units import parse_cpu_allowance, parse_limits_cpu

    hard: list[str] = []
    soft = ""
    cpus, allowance = config.get("limits.cpu"), config.get("limits.cpu.allowance")
    try:
        if cpus:
            picked = parse_limits_cpu(cpus)
            count = picked if isinstance(picked, int) else len(picked)
            text = f"{count} CPU{'' if count == 1 else 's'}"
            hard.append(text if isinstance(picked, int) else f"{text}: {cpus}")
        if allowance:
            kind, amount, _period = parse_cpu_allowance(allowance)
            if kind == "quota":
                hard.append(allowance)
            elif amount < 100:
                soft = f"soft limit {amount}%"
    except InvalidConfig:  # not lxmgr's validation (another server): show it as it is
        hard = [value for value in (cpus, allowance) if value]
    pieces = ([f"limit {', '.join(hard)}"] if hard else []) + ([soft] if soft else [])
    return ", ".join(pieces) or "unlimited"


def memory_limit(config: dict[str, str], memory: dict[str, Any]) -> str:
    """limits.memory as the server applies it: memory.total is the effective limit (a
    percentage resolved, capped by the host's memory, as LXD's GetEffectiveMemoryLimit);
    'soft limit' when limits.memory.enforce is soft; else 'unlimited'."""
    value = config.get("limits.memory")
    if not value:
        return "unlimited"
    if config.get("limits.memory.enforce") == "soft":
        return f"soft limit {value}"
    total = memory.get("total")
    return f"limit {format_size(total) if total else value}"


def _lease_hint(inst: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """The sentence `lxmgr list`'s '(no lease: lxmgr doctor)' stands for."""
    waited = seconds_without_lease(inst, state)
    if waited is None:
        return []
    return ["", f"No IPv4 lease on {', '.join(nic_names(inst))} {int(waited)}s after start: "
                "run `lxmgr doctor` to find out why (bridge, dnsmasq, firewall)"]


def _network(network: dict[str, Any]) -> list[str]:
    if not network:
        return []
    lines = ["  Network usage:"]
    for iface, data in sorted(network.items()):
        data = data or {}
        counters = data.get("counters") or {}
        lines += [f"    {iface}:", f"      Type: {data.get('type', '')}",
                  f"      State: {str(data.get('state', '')).upper()}"]
        for key, label in (("host_name", "Host interface"), ("hwaddr", "MAC address"),
                           ("mtu", "MTU")):
            if data.get(key):
                lines.append(f"      {label}: {data[key]}")
        for addr in data.get("addresses") or []:
            label = "IP address" if addr.get("family") == "inet" else "IPv6 address"
            lines.append(f"      {label}: {addr.get('address')}/{addr.get('netmask')} "
                         f"({addr.get('scope')})")
        lines += [f"      Bytes received: {format_size(counters.get('bytes_received', 0))}",
                  f"      Bytes sent: {format_size(counters.get('bytes_sent', 0))}"]
    return lines


@click.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_instances)
def info(name: str) -> None:
    """Show an instance's status, processes, CPU, memory and network, with their limits.

    \b
    Examples:
      lxmgr info web1
    """
    app = get_app()
    inst = app.query("GET", app.instance_path(name))
    state = app.query("GET", app.instance_path(name, "state")) or {}
    inst["snapshots"] = app.query("GET", app.instance_path(name, "snapshots"),
                                  params={"recursion": 1}) or []
    app.echo(render_info(inst, state))
