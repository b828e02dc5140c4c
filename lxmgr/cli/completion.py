"""Shell completion of object names from the API (best effort, never an error).

Enable with `eval "$(_LXMGR_COMPLETE=bash_source lxmgr)"` (zsh_source, fish_source).
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem


def _names(ctx: click.Context, collection: str) -> list[str]:
    from lxmgr.client import Client

    root = ctx.find_root()
    params = root.params if root is not None else {}
    try:
        project = params.get("project") or _stored_local_project()
        with Client(params.get("socket_path"), timeout=1.0, project=project) as client:
            urls = client.query("GET", f"/1.0/{collection}")
    except Exception:  # completion must never print a traceback into the shell
        return []
    if isinstance(urls, dict):  # /1.0/operations groups URLs by status
        urls = [url for group in urls.values() for url in group or []]
    return [str(url).rstrip("/").rsplit("/", 1)[-1] for url in urls or []]


def _stored_local_project() -> str | None:
    """The current project of `local` (completion names this host's objects only)."""
    from lxmgr.cli.app import DEFAULT_PROJECT, LOCAL, stored_project

    stored = stored_project(LOCAL)
    return stored if stored and stored != DEFAULT_PROJECT else None


def _complete(collection: str) -> Any:
    def complete(ctx: click.Context, _param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(n) for n in _names(ctx, collection) if n.startswith(incomplete)]

    return complete


complete_instances = _complete("instances")
complete_profiles = _complete("profiles")
complete_operations = _complete("operations")
complete_networks = _complete("networks")
