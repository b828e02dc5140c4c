"""`lxmgr init`: create an instance from an image without starting it (`lxc init`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lxmgr.cli.app import App
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import parse_assignments


def creation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments and flags init and launch share (as lxc's)."""
    options = [
        click.argument("image", metavar="[REMOTE:]IMAGE"),
        click.argument("name", required=False, type=ON_SERVER, metavar="[[REMOTE:]NAME]"),
        click.option("-p", "--profile", "profiles", multiple=True, metavar="PROFILE",
                     help="Profile to apply (repeatable; default: default)."),
        click.option("--no-profiles", is_flag=True, help="Apply no profile at all."),
        click.option("-c", "--config", "config", multiple=True, metavar="KEY=VALUE",
                     help="Config key to set (repeatable)."),
        click.option("-e", "--ephemeral", is_flag=True,
                     help="Delete the instance when it stops."),
        click.option("-s", "--storage", metavar="POOL", help="Storage pool for the root disk."),
        click.option("-d", "--description", default="", help="Instance description."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_create_body(image: str, name: str, *, profiles: tuple[str, ...] = (),
                      no_profiles: bool = False, config: tuple[str, ...] = (),
                      ephemeral: bool = False, storage: str | None = None,
                      description: str = "", start: bool = False,
                      server: str = "local") -> dict[str, Any]:
    """The POST /1.0/instances body (InstancesPost) for an instance on the remote `server`:
    IMAGE is an image server's (`images:debian/12`) or one of that server's own."""
    from lxmgr.cli.remotes import image_source, local_alias

    body: dict[str, Any] = {
        "name": name,
        "type": "container",
        "source": image_source(image, server) or {"type": "image",
                                                  "alias": local_alias(image)},
        "config": parse_assignments(config, "config") if config else {},
        "devices": {},
        "ephemeral": ephemeral,
        "description": description,
        "start": start,
    }
    if no_profiles:
        body["profiles"] = []
    elif profiles:
        body["profiles"] = list(profiles)
    if storage:
        body["devices"]["root"] = {"type": "disk", "path": "/", "pool": storage}
    return body


def create_instance(app: App, image: str, name: str | None, **options: Any) -> str:
    """POST /1.0/instances and wait; print 'Creating NAME'; return the name."""
    from lxmgr.model.instance import generate_name, validate_instance_name

    name = name or generate_name()
    validate_instance_name(name)
    app.echo(f"Creating {name}")
    body = build_create_body(image, name, server=app.server, **options)
    app.operate("POST", "/1.0/instances", body=body, label=f"Creating {name}")
    return name


@click.command()
@creation_options
def init(image: str, name: str | None, **options: Any) -> None:
    """Create an instance from IMAGE without starting it.

    NAME defaults to a generated one (adjective-animal). IMAGE is a local image or
    recipe (debian: built with debootstrap the first time, about a minute; Ctrl-C cancels
    the build and keeps nothing) or REMOTE:ALIAS from an image server (ubuntu:24.04).

    \b
    Examples:
      lxmgr init debian web1
      lxmgr init debian web2 -p default -p small -c limits.memory=512MiB
      lxmgr init debian --ephemeral
    """
    create_instance(get_app(), image, name, **options)
