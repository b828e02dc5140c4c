"""`lxmgr launch`: init + start (`lxc launch`)."""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.actions import change_state
from lxmgr.cli.commands.init import create_instance, creation_options
from lxmgr.cli.options import get_app


@click.command()
@creation_options
def launch(image: str, name: str | None, **options: Any) -> None:
    """Create an instance from IMAGE and start it.

    NAME defaults to a generated one (adjective-animal). IMAGE is a local image or
    recipe (debian: built with debootstrap the first time, about a minute; Ctrl-C cancels
    the build and keeps nothing) or REMOTE:ALIAS from an image server (ubuntu:24.04).

    \b
    Examples:
      lxmgr launch debian web1
      lxmgr launch debian db1 -p default -c limits.memory=1GiB -c limits.cpu=2
      lxmgr launch debian --ephemeral
    """
    app = get_app()
    name = create_instance(app, image, name, **options)
    app.echo(f"Starting {name}")
    change_state(app, name, "start")
