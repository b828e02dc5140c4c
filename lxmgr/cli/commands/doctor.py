"""`lxmgr doctor`: the host checks lxmgrd runs (GET /1.0/doctor), one line each, with fixes.

The first check is the daemon itself: when it does not answer, that is the finding.
"""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.options import get_app


def daemon_down(socket_path: str) -> dict[str, Any]:
    """The finding that stands for every other check when lxmgrd is not running."""
    from lxmgr.cli.app import DAEMON_HINT

    return {"name": "lxmgrd", "ok": False, "detail": f"not running (socket {socket_path})",
            "fix": DAEMON_HINT}


def render_checks(checks: list[dict[str, Any]]) -> str:
    """`[ OK ] name: detail`, or `[FAIL] name: detail` and an indented `fix:` line."""
    lines = []
    for check in checks:
        mark = "[ OK ]" if check.get("ok") else "[FAIL]"
        detail = str(check.get("detail") or "")
        lines.append(f"{mark} {check.get('name', '')}" + (f": {detail}" if detail else ""))
        if not check.get("ok") and check.get("fix"):
            lines.append(f"       fix: {check['fix']}")
    return "\n".join(lines)


@click.command()
def doctor() -> None:
    """Check the host for network problems; print a fix for each.

    Looks at the bridge, dnsmasq (alive and answering), ports 53/67 taken by another
    resolver, whether the host's own resolver (systemd-resolved) sends the network's domain
    (web1.lxmgr) to it, or how to reach it where it cannot, ip_forward, a FORWARD policy of
    DROP set by another firewall and routes that collide with a network's subnet. Exits 1
    when any check fails.

    \b
    Examples:
      lxmgr doctor
    """
    from lxmgr.client import DaemonNotRunning

    app = get_app()
    try:
        checks = list(app.query("GET", "/1.0/doctor") or [])
    except DaemonNotRunning as err:
        checks = [daemon_down(err.socket_path)]
    app.echo(render_checks(checks))
    if not all(check.get("ok") for check in checks):
        raise click.exceptions.Exit(1)
