"""`lxmgr info`'s Resources section: CPU time with decimals, each usage beside the limit the
expanded config sets (memory from the server's effective memory.total), lxc's labels."""

from __future__ import annotations

from typing import Any

import pytest

from lxmgr.cli.commands.info import (
    cpu_limit,
    format_cpu_seconds,
    memory_limit,
    processes_limit,
    render_info,
)

MiB = 1 << 20


def test_cpu_seconds_keep_fractions() -> None:
    assert format_cpu_seconds(0) == "0.00"
    assert format_cpu_seconds(854_316_299) == "0.85"  # lxc's whole seconds would say 0
    assert format_cpu_seconds(1_854_316_299) == "1.85"


@pytest.mark.parametrize(("config", "text"), [
    ({}, "unlimited"),
    ({"limits.cpu": "1"}, "limit 1 CPU"),
    ({"limits.cpu": "2"}, "limit 2 CPUs"),
    ({"limits.cpu": "0-1"}, "limit 2 CPUs: 0-1"),
    ({"limits.cpu": "1-1"}, "limit 1 CPU: 1-1"),  # a range pins, as in LXD
    ({"limits.cpu.allowance": "25ms/100ms"}, "limit 25ms/100ms"),
    ({"limits.cpu": "2", "limits.cpu.allowance": "50ms/100ms"}, "limit 2 CPUs, 50ms/100ms"),
    ({"limits.cpu.allowance": "50%"}, "soft limit 50%"),
    ({"limits.cpu": "2", "limits.cpu.allowance": "50%"}, "limit 2 CPUs, soft limit 50%"),
    ({"limits.cpu.allowance": "100%"}, "unlimited"),
    ({"limits.cpu": "two"}, "limit two"),  # another server's value: shown as it is
])
def test_cpu_limit(config: dict[str, str], text: str) -> None:
    assert cpu_limit(config) == text


def test_memory_limit() -> None:
    assert memory_limit({}, {"total": 8 << 30}) == "unlimited"
    assert memory_limit({"limits.memory": "512MiB"}, {"total": 512 * MiB}) == \
        "limit 512.00MiB"
    # a percentage as the server resolved it
    assert memory_limit({"limits.memory": "50%"}, {"total": 1024 * MiB}) == "limit 1.00GiB"
    assert memory_limit({"limits.memory": "512MiB"}, {}) == "limit 512MiB"  # no total
    assert memory_limit({"limits.memory": "512MiB", "limits.memory.enforce": "soft"},
                        {"total": 8 << 30}) == "soft limit 512MiB"


def test_processes_limit() -> None:
    assert processes_limit({"limits.processes": "500"}) == "limit 500"
    assert processes_limit({}) == "unlimited"


def test_resources_section() -> None:
    inst: dict[str, Any] = {"name": "c1", "expanded_config": {
        "limits.memory": "512MiB", "limits.processes": "500", "limits.cpu": "2"}}
    state = {"status": "Running", "pid": 42, "processes": 12,
             "cpu": {"usage": 1_234_000_000},
             "memory": {"usage": int(42.1 * MiB), "usage_peak": 50 * MiB, "total": 512 * MiB,
                        "swap_usage": 0, "swap_usage_peak": 0}}
    out = render_info(inst, state).splitlines()
    at = out.index("Resources:")
    assert out[at:at + 7] == [
        "Resources:",
        "  Processes: 12 (limit 500)",
        "  CPU usage:",
        "    CPU usage (in seconds): 1.23 (limit 2 CPUs)",
        "  Memory usage:",
        "    Memory (current): 42.10MiB (limit 512.00MiB)",
        "    Memory (peak): 50.00MiB",
    ]


def test_stopped_instance_has_no_resources() -> None:
    out = render_info({"name": "c1"}, {"status": "Stopped", "pid": 0})
    assert "Resources:" not in out
