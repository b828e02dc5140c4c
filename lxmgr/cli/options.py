"""click pieces shared by the verbs: the --format option and the current App (C12)."""

from __future__ import annotations

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
