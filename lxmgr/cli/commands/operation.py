"""`lxmgr operation list|show|delete` (`lxc operation`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.completion import complete_operations
from lxmgr.cli.options import format_option, get_app
from lxmgr.cli.terminal import format_time, render, render_yaml


def flatten(groups: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """GET /1.0/operations?recursion=1 groups objects by status: one list, oldest first."""
    ops = [op for group in (groups or {}).values() for op in group or []
           if isinstance(op, dict)]
    return sorted(ops, key=lambda op: str(op.get("created_at", "")))


@click.group()
def operation() -> None:
    """Inspect and cancel background operations.

    \b
    Examples:
      lxmgr operation list
      lxmgr operation show 3b5e0a1c-...
      lxmgr operation delete 3b5e0a1c-...
    """


@operation.command("list")
@format_option
def list_(fmt: str) -> None:
    """List operations.

    \b
    Examples:
      lxmgr operation list
    """
    app = get_app()
    ops = flatten(app.query("GET", "/1.0/operations", params={"recursion": 1}))
    rows = [[str(op.get("id", "")), str(op.get("class", "")).upper(),
             str(op.get("description", "")), str(op.get("status", "")).upper(),
             "YES" if op.get("may_cancel") else "NO", format_time(op.get("created_at"))]
            for op in ops]
    headers = ["ID", "TYPE", "DESCRIPTION", "STATUS", "CANCELABLE", "CREATED"]
    app.echo(render(fmt, headers, rows, ops))


@operation.command()
@click.argument("op_id", metavar="ID", shell_complete=complete_operations)
def show(op_id: str) -> None:
    """Show an operation as YAML.

    \b
    Examples:
      lxmgr operation show 3b5e0a1c-...
    """
    app = get_app()
    app.echo(render_yaml(app.query("GET", f"/1.0/operations/{quote(op_id, safe='')}")))


@operation.command()
@click.argument("op_id", metavar="ID", shell_complete=complete_operations)
def delete(op_id: str) -> None:
    """Cancel an operation.

    \b
    Examples:
      lxmgr operation delete 3b5e0a1c-...
    """
    get_app().query("DELETE", f"/1.0/operations/{quote(op_id, safe='')}")
