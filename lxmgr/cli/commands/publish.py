"""`lxmgr publish NAME[/SNAP]`: make an image from an instance or a snapshot (`lxc publish`)."""

from __future__ import annotations

from typing import Any

import click

from lxmgr.cli.completion import complete_instances
from lxmgr.cli.options import ON_SERVER, get_app
from lxmgr.cli.terminal import parse_assignments


@click.command()
@click.argument("source", metavar="NAME[/SNAP]", type=ON_SERVER, shell_complete=complete_instances)
@click.argument("properties", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--alias", "aliases", multiple=True, help="Alias of the new image (repeatable).")
@click.option("--public", is_flag=True, help="Mark the image public (LXD's flag; recorded).")
def publish(source: str, properties: tuple[str, ...], aliases: tuple[str, ...],
            public: bool) -> None:
    """Publish a stopped instance, or a snapshot, as a new image.

    \b
    Examples:
      lxmgr publish web1 --alias web-base
      lxmgr publish web1/snap0 --alias web-v1 description="Web server v1"
    """
    app = get_app()
    kind = "snapshot" if "/" in source else "instance"
    body: dict[str, Any] = {"source": {"type": kind, "name": source}, "public": public,
                            "aliases": [{"name": a, "description": ""} for a in aliases],
                            "properties": parse_assignments(properties, "property")
                            if properties else {}}
    op = app.operate("POST", "/1.0/images", body=body, label=f"Publishing {source}")
    app.echo(f"Instance published with fingerprint: "
             f"{(op.get('metadata') or {}).get('fingerprint', '')}")
