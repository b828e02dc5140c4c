"""click pieces shared by the verbs: the --format option and the current App (C12)."""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.app import App
from lxmgr.cli.terminal import FORMATS

# The --format option of every list command.
format_option = click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
                             default="table", show_default=True, help="Output format.")


def get_app(ctx: click.Context | None = None) -> App:
    """The App of the current invocation."""
    context = ctx or click.get_current_context()
    app = context.find_object(App)
    if app is None:  # a command invoked on its own (tests): make one
        app = context.ensure_object(App)
    return app


class RemoteRef(click.ParamType):  # type: ignore[type-arg]  # generic in click's stubs only
    """[REMOTE:]NAME of something on a server (an instance, a profile, a network...): the
    value without its prefix; the prefix chooses the server remote of the invocation
    (App.target). With filters=True, a KEY=VALUE filter (`volatile.eth0.hwaddr=00:16:...`)
    passes unchanged."""

    name = "[REMOTE:]NAME"

    def __init__(self, *, filters: bool = False) -> None:
        self.filters = filters

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if not isinstance(value, str) or (self.filters and "=" in value.split(":", 1)[0]):
            return value
        return get_app(ctx).target(value)


# The type of every argument naming something on a server: `prod:web1` -> `web1` on prod.
ON_SERVER = RemoteRef()
