"""`lxmgr remote ...`: image servers this client knows (`lxc remote` for simplestreams)."""

from __future__ import annotations

import click

from lxmgr.cli.options import format_option, get_app
from lxmgr.cli.remotes import config_path
from lxmgr.cli.terminal import render


@click.group()
def remote() -> None:
    """Manage image remotes (simplestreams servers such as ubuntu: and images:).

    \b
    Examples:
      lxmgr remote list
      lxmgr remote add mirror https://images.example.org
      lxmgr launch mirror:debian/12 web1
    """


@remote.command("list")
@format_option
def list_(fmt: str) -> None:
    """List remotes.

    \b
    Examples:
      lxmgr remote list
    """
    from lxmgr.images.remotes import load_remotes

    remotes = sorted(load_remotes(config_path()).values(), key=lambda r: r.name)
    rows = [[r.name + (" (default)" if r.default_alias else ""), r.url, r.protocol,
             "YES" if r.public else "NO", "YES" if r.builtin else "NO"] for r in remotes]
    get_app().echo(render(fmt, ["NAME", "URL", "PROTOCOL", "PUBLIC", "STATIC"], rows,
                          [r.to_dict() for r in remotes]))


@remote.command()
@click.argument("name")
@click.argument("url")
@click.option("--protocol", type=click.Choice(["simplestreams"]), default="simplestreams",
              show_default=True, help="Image server protocol.")
@click.option("--public/--private", default=True, help="Whether it needs no credentials.")
def add(name: str, url: str, protocol: str, public: bool) -> None:
    """Add an image remote.

    \b
    Examples:
      lxmgr remote add mirror https://images.example.org
    """
    from lxmgr.images.remotes import add_remote

    add_remote(config_path(), name, url, protocol=protocol, public=public)


@remote.command()
@click.argument("name")
def remove(name: str) -> None:
    """Remove an image remote (built-in ones stay).

    \b
    Examples:
      lxmgr remote remove mirror
    """
    from lxmgr.images.remotes import remove_remote

    remove_remote(config_path(), name)
