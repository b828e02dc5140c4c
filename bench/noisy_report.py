"""Tables and footer of bench/noisy.py: latency per phase and probe against the goal, and
whether the other containers kept working. Imports bench/common.py only; pure formatting."""

from __future__ import annotations

from typing import Any

from common import align

GOAL_MS = 200.0  # issue 14: p99 of the list GET and of exec under a noisy neighbour
GOAL_PROBES = ("get_r1", "exec_api", "exec_cli")
PROBE_LABELS = {"get_r1": "GET instances?recursion=1", "exec_api": "exec true (API)",
                "exec_cli": "exec -- true (CLI)", "content": "token write+read (exec)",
                "host_true": "host: fork+exec /bin/true"}
MiB = 1 << 20


def mem_margin(host: dict[str, Any]) -> int:
    """The least MemAvailable the host must keep: 512 MiB or 5% of its memory."""
    return max(512 * MiB, host.get("mem_total", 0) // 20)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _verdict(key: str, data: dict[str, Any]) -> str:
    if key not in GOAL_PROBES or not data.get("n"):
        return ""
    return "pass" if data["p99"] < GOAL_MS else "FAIL"


def latency_table(phases: dict[str, Any]) -> str:
    rows = [["phase", "probe", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed",
             f"p99 < {GOAL_MS:.0f} ms"]]
    for phase, result in phases.items():
        for key, data in result.get("probes", {}).items():
            rows.append([phase, PROBE_LABELS.get(key, key), str(data["n"]),
                         _ms(data.get("p50")), _ms(data.get("p95")), _ms(data.get("p99")),
                         _ms(data.get("max")), str(data["failed"]), _verdict(key, data)])
    return align(rows)


def phase_problems(result: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """Why the other containers did not keep working in this phase (empty: they did)."""
    problems = []
    for key, data in result.get("probes", {}).items():
        if data["failed"]:
            problems.append(f"{PROBE_LABELS.get(key, key)} failed {data['failed']}x "
                            f"({'; '.join(data['failures'][:2])})")
    if result.get("stuck_probes"):
        problems.append(f"probes stuck: {', '.join(result['stuck_probes'])}")
    bad = {n: s for n, s in result.get("quiet_states", {}).items()
           if s not in ("running", "degraded")}
    if bad:
        problems.append("quiet systemd: " + ", ".join(f"{n} '{s}'" for n, s in bad.items()))
    seen = result.get("host", {})
    if seen.get("mem_available_min", 1 << 62) < mem_margin(host):
        problems.append(f"host MemAvailable fell to {seen['mem_available_min'] // MiB} MiB")
    if seen.get("tasks_max", 0) > 0.9 * host.get("task_limit", 1 << 62):
        problems.append(f"host tasks reached {seen['tasks_max']}")
    return problems


def _hogs(result: dict[str, Any]) -> str:
    stats = result.get("hog_stats", {})
    parts = []
    if "memory" in stats:
        parts.append(f"mem {stats['memory'].get('sigkilled', 0)}/"
                     f"{stats['memory'].get('rounds', 0)} killed")
    if "disk" in stats:
        parts.append(f"disk {stats['disk'].get('written_mib', 0)} MiB, "
                     f"{stats['disk'].get('write_failed', 0)} full")
    return "; ".join(parts) or "-"


def working_table(report: dict[str, Any]) -> str:
    side = report.get("lxmgr", {})
    limits = report["limits"]
    rows = [["phase", "kept working", "quiet systemd", "host avail MiB", "host tasks",
             f"noisy pids/{limits['processes']}", f"noisy MiB/{limits['memory']}",
             "forks refused", "OOM kills", "noisy CPU s", "hogs", "settle s"]]
    for phase, result in side.get("phases", {}).items():
        host, peak = result.get("host", {}), result.get("noisy_peak", {})
        counters = result.get("noisy_counters", {})
        states = sorted(set(result.get("quiet_states", {}).values()))
        rows.append([phase, "no" if phase_problems(result, report["host"]) else "yes",
                     "/".join(states) or "-", str(host.get("mem_available_min", 0) // MiB),
                     str(host.get("tasks_max", "-")), str(peak.get("pids", "-")),
                     str(peak.get("memory", 0) // MiB), str(counters.get("fork_refused", "-")),
                     str(counters.get("oom_kill", "-")),
                     f"{counters.get('cpu_ns', 0) / 1e9:.1f}", _hogs(result),
                     f"{result.get('settle_s', 0):.1f}"])
    return align(rows)


def render_tables(report: dict[str, Any]) -> str:
    side = report.get("lxmgr", {})
    return "\n\n".join([latency_table(side.get("phases", {})), working_table(report), ""])


def goal_lines(phases: dict[str, Any]) -> list[str]:
    """Per goal probe: the worst p99 over the noisy phases (idle excluded), pass or FAIL."""
    lines = []
    for key in GOAL_PROBES:
        worst = [(r["probes"][key]["p99"], phase) for phase, r in phases.items()
                 if phase != "idle" and r.get("probes", {}).get(key, {}).get("n")]
        if not worst:
            continue
        p99, phase = max(worst)
        idle = phases.get("idle", {}).get("probes", {}).get(key, {}).get("p99")
        lines.append(f"goal {PROBE_LABELS[key]} p99 < {GOAL_MS:.0f} ms with a noisy "
                     f"neighbour: {'pass' if p99 < GOAL_MS else 'FAIL'} (worst {p99:.1f} ms in "
                     f"phase {phase}; idle {_ms(idle)} ms)")
    return lines


def render_footer(report: dict[str, Any]) -> str:
    side = report.get("lxmgr", {})
    phases = side.get("phases", {})
    host = report["host"]
    lines = goal_lines(phases)
    problems = {p: phase_problems(r, host) for p, r in phases.items()}
    if phases:
        failed = {p: v for p, v in problems.items() if v}
        lines.append("the other containers kept working: " + (
            "yes (every probe right, systemd running/degraded, host headroom kept)"
            if not failed else "NO: " + "; ".join(f"{p}: {', '.join(v)}"
                                                  for p, v in failed.items())))
    limits = side.get("limits_seen")
    if limits:
        lines.append(f"noisy {side.get('noisy')}: kernel limits pids.max {limits['pids.max']}, "
                     f"memory {int(limits['memory']) // MiB} MiB, cpus {limits['cpus']}; root "
                     f"disk {side.get('disk')}; noisy systemd after each phase: "
                     + ", ".join(f"{p} {r.get('noisy_state') or '?'}" for p, r in phases.items()))
    lines.append(f"{report['duration_s']} s per phase; probe intervals (s): " + ", ".join(
        f"{k} {v}" for k, v in report["intervals_s"].items() if v is not None))
    lines.append(f"host: {host['cpus']} CPUs, {host['mem_total'] // MiB} MiB, MemAvailable "
                 f"margin {mem_margin(host) // MiB} MiB, task limit {host['task_limit']}, load "
                 f"average {_load(host.get('loadavg_start'))} before, "
                 f"{_load(host.get('loadavg_end'))} after; lxmgr {side.get('version', '?')}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def _load(values: Any) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"
