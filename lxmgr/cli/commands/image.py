"""`lxmgr image ...`: the local image store and its aliases (`lxc image`), plus `build`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.app import App
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import format_size, format_time, render


def resolve_fingerprint(app: App, image: str) -> str:
    """An alias's target, else image itself (a fingerprint or a prefix of one)."""
    from lxmgr.errors import NotFound

    try:
        alias = app.query("GET", f"/1.0/images/aliases/{quote(image, safe='')}")
    except NotFound:
        return image
    return str((alias or {}).get("target") or image)


def image_path(fingerprint: str) -> str:
    return f"/1.0/images/{quote(fingerprint, safe='')}"


def _aliases(img: dict[str, Any]) -> list[str]:
    return [str(a.get("name", "")) for a in img.get("aliases") or []]


def _yes(value: object) -> str:
    return "yes" if value else "no"


def render_image_info(img: dict[str, Any]) -> str:
    """lxc image info's layout."""
    lines = [f"Fingerprint: {img.get('fingerprint', '')}",
             f"Size: {format_size(img.get('size'))}",
             f"Architecture: {img.get('architecture', '')}",
             f"Type: {img.get('type', 'container')}",
             f"Public: {_yes(img.get('public'))}",
             "Timestamps:",
             f"    Created: {format_time(img.get('created_at')) or 'unknown'}",
             f"    Uploaded: {format_time(img.get('uploaded_at')) or 'unknown'}",
             f"    Expires: {format_time(img.get('expires_at')) or 'never'}",
             f"    Last used: {format_time(img.get('last_used_at')) or 'never'}",
             "Properties:"]
    lines += [f"    {k}: {v}" for k, v in sorted((img.get("properties") or {}).items())]
    lines.append("Aliases:")
    lines += [f"    - {name}" for name in _aliases(img)]
    lines += [f"Cached: {_yes(img.get('cached'))}",
              f"Auto update: {'enabled' if img.get('auto_update') else 'disabled'}"]
    if img.get("profiles"):
        lines.append("Profiles:")
        lines += [f"    - {name}" for name in img["profiles"]]
    return "\n".join(lines)


@click.group()
def image() -> None:
    """Manage local images: list, inspect, build from a recipe, delete, alias.

    \b
    Examples:
      lxmgr image build debian
      lxmgr image list
      lxmgr image info debian
      lxmgr image alias create stable 3f2a9c
    """


@image.command("list")
@click.argument("remote", required=False, metavar="[REMOTE:]")
@format_option
def list_(remote: str | None, fmt: str) -> None:
    """List images (this server's, or a remote's with REMOTE:).

    \b
    Examples:
      lxmgr image list
      lxmgr image list --format json
      lxmgr image list images:
    """
    from lxmgr.cli.remotes import config_path
    from lxmgr.images.remotes import get_remote

    app = get_app()
    if remote and not get_remote(config_path(), remote.partition(":")[0]).is_server:
        app.echo(_remote_listing(remote, fmt))
        return
    if remote:
        app.target(remote)
    images = app.query("GET", "/1.0/images", params={"recursion": 1}) or []
    rows = [["\n".join(_aliases(i)), str(i.get("fingerprint", ""))[:12], _yes(i.get("public")),
             str((i.get("properties") or {}).get("description", "")),
             str(i.get("architecture", "")), str(i.get("type", "container")).upper(),
             format_size(i.get("size")), format_time(i.get("uploaded_at"))]
            for i in sorted(images, key=lambda i: (_aliases(i) or [""])[0])]
    headers = ["ALIAS", "FINGERPRINT", "PUBLIC", "DESCRIPTION", "ARCHITECTURE", "TYPE", "SIZE",
               "UPLOAD DATE"]
    app.echo(render(fmt, headers, rows, images))


@image.command()
@click.argument("image_name", metavar="[REMOTE:]IMAGE", type=ON_SERVER)
def info(image_name: str) -> None:
    """Show an image (by alias or fingerprint).

    \b
    Examples:
      lxmgr image info debian
    """
    app = get_app()
    img = app.query("GET", image_path(resolve_fingerprint(app, image_name)))
    app.echo(render_image_info(img))


@image.command()
@click.argument("recipe")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the image (repeatable).")
def build(recipe: str, aliases: tuple[str, ...]) -> None:
    """Build an image from an lxmgr recipe (images/RECIPE.yaml) on the server.

    \b
    Examples:
      lxmgr image build debian
      lxmgr image build debian --alias bookworm
    """
    app = get_app()
    body: dict[str, Any] = {"source": {"type": "recipe", "name": recipe}}
    if aliases:
        body["aliases"] = [{"name": a, "description": ""} for a in aliases]
    op = app.operate("POST", "/1.0/images", body=body, label=f"Building {recipe}")
    fingerprint = (op.get("metadata") or {}).get("fingerprint")
    app.echo(f"Image built: {fingerprint}" if fingerprint else "Image built")


@image.command()
@click.argument("images", nargs=-1, required=True, metavar="[REMOTE:]IMAGE...",
                type=ON_SERVER)
def delete(images: tuple[str, ...]) -> None:
    """Delete images (by alias or fingerprint).

    \b
    Examples:
      lxmgr image delete debian
    """
    app = get_app()
    for name in images:
        app.operate("DELETE", image_path(resolve_fingerprint(app, name)))


@image.group()
def alias() -> None:
    """Manage image aliases.

    \b
    Examples:
      lxmgr image alias list
      lxmgr image alias create stable 3f2a9c
      lxmgr image alias delete stable
    """


@alias.command("create")
@click.argument("name", metavar="[REMOTE:]NAME", type=ON_SERVER)
@click.argument("fingerprint")
@click.option("-d", "--description", default="",
              help="Alias description (not supported yet: refused when given).")
def alias_create(name: str, fingerprint: str, description: str) -> None:
    """Create alias NAME for an image.

    \b
    Examples:
      lxmgr image alias create stable 3f2a9c
    """
    body = {"name": name, "target": fingerprint, "description": description}
    get_app().query("POST", "/1.0/images/aliases", body=body)


@alias.command("delete")
@click.argument("name", metavar="[REMOTE:]NAME", type=ON_SERVER)
def alias_delete(name: str) -> None:
    """Delete an image alias.

    \b
    Examples:
      lxmgr image alias delete stable
    """
    get_app().query("DELETE", f"/1.0/images/aliases/{quote(name, safe='')}")


@alias.command("list")
@format_option
def alias_list(fmt: str) -> None:
    """List image aliases.

    \b
    Examples:
      lxmgr image alias list
    """
    app = get_app()
    aliases = app.query("GET", "/1.0/images/aliases", params={"recursion": 1}) or []
    rows = [[str(a.get("name", "")), str(a.get("target", ""))[:12],
             str(a.get("description", ""))] for a in sorted(aliases, key=lambda a: a["name"])]
    app.echo(render(fmt, ["ALIAS", "FINGERPRINT", "DESCRIPTION"], rows, aliases))


def _remote_listing(remote: str, fmt: str) -> str:
    """`image list REMOTE:`: read the server's simplestreams index, as lxc does."""
    import asyncio

    from lxmgr.cli.remotes import config_path
    from lxmgr.errors import InvalidConfig
    from lxmgr.images.download import fetch_products
    from lxmgr.images.remotes import get_remote

    name, _, rest = remote.partition(":")
    if rest:
        raise InvalidConfig(f"Expected 'REMOTE:', not '{remote}'")
    server = get_remote(config_path(), name)
    images = asyncio.run(fetch_products(server.url))
    from datetime import UTC, datetime

    def uploaded(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y/%m/%d %H:%M UTC") if epoch \
            else ""

    rows = [[", ".join(list(i.aliases)[:3]), i.fingerprint[:12], i.description or
             f"{i.os} {i.release}", i.architecture, format_size(i.size),
             uploaded(i.created_at)]
            for i in sorted(images, key=lambda i: (i.os, i.release, i.architecture))]
    headers = ["ALIAS", "FINGERPRINT", "DESCRIPTION", "ARCHITECTURE", "SIZE", "UPLOAD DATE"]
    return render(fmt, headers, rows, [dict(fingerprint=i.fingerprint, aliases=list(i.aliases),
                                            os=i.os, release=i.release,
                                            architecture=i.architecture, size=i.size)
                                       for i in images])


@image.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE [ROOTFS]")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the image (repeatable).")
def import_(files: tuple[str, ...], aliases: tuple[str, ...]) -> None:
    """Import an LXD-format image: one unified tarball, or a metadata tarball and a rootfs
    (squashfs or tarball).

    \b
    Examples:
      lxmgr image import ubuntu.tar.gz --alias my-ubuntu
      lxmgr image import lxd.tar.xz rootfs.squashfs --alias noble
    """
    from pathlib import Path

    from lxmgr.client.transfer import upload_image

    app = get_app()
    paths = [Path(f) for f in files]
    for path in paths:
        if not path.is_file():
            app.abort(f"No such image file '{path}'")
    op = upload_image(app.client, paths, aliases=aliases)
    op = app.client.wait_operation(op)
    from lxmgr.client.rest import check_operation

    fingerprint = (check_operation(op).get("metadata") or {}).get("fingerprint", "")
    app.echo(f"Image imported with fingerprint: {fingerprint}")


@image.command()
@click.argument("image_name", metavar="[REMOTE:]IMAGE", type=ON_SERVER)
@click.argument("target", required=False, default=".")
def export(image_name: str, target: str) -> None:
    """Export an image into TARGET (a directory, default the current one, or a file name):
    the file(s) it was imported or downloaded from, named after its LXD fingerprint (a split
    image gives two, meta-<fp>.tar.xz and <fp>.squashfs, and needs a directory), else an LXD
    unified tarball made from it.

    \b
    Examples:
      lxmgr image export debian
      lxmgr image export debian /srv/images/
    """
    from pathlib import Path

    from lxmgr.client.transfer import download_files

    app = get_app()
    fingerprint = resolve_fingerprint(app, image_name)
    written = download_files(app.client, f"{image_path(fingerprint)}/export", Path(target))
    app.echo(f"Image exported to {' and '.join(str(p) for p in written)}")


@image.command()
@click.argument("source", metavar="REMOTE:IMAGE")
@click.argument("target", metavar="[REMOTE:]", required=False, default="")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the copy (repeatable).")
@click.option("--auto-update", is_flag=True,
              help="Keep it up to date (every images.auto_update_interval hours).")
def copy(source: str, target: str, aliases: tuple[str, ...], auto_update: bool) -> None:
    """Copy an image from an image server into a server's store (default: the default
    remote's).

    \b
    Examples:
      lxmgr image copy images:debian/12 local: --alias debian12
      lxmgr image copy ubuntu:24.04 prod:
    """
    from lxmgr.cli.remotes import image_source

    app = get_app()
    if target and (not target.endswith(":") or app.target(target)):
        app.abort(f"Expected REMOTE: as the target (a remote name and a colon), not '{target}'")
    src = image_source(source, app.server)
    if src is None:
        app.abort(f"'{source}' is not on a remote: give REMOTE:IMAGE")
    body: dict[str, Any] = {"source": src, "auto_update": auto_update,
                            "aliases": [{"name": a, "description": ""} for a in aliases]}
    op = app.operate("POST", "/1.0/images", body=body, label=f"Copying {source}")
    app.echo(f"Image copied successfully: {(op.get('metadata') or {}).get('fingerprint', '')}")


@image.command()
@click.argument("images", nargs=-1, required=True, metavar="[REMOTE:]IMAGE...",
                type=ON_SERVER)
def refresh(images: tuple[str, ...]) -> None:
    """Look for a newer build of images copied from a remote.

    \b
    Examples:
      lxmgr image refresh debian12
    """
    app = get_app()
    for name in images:
        op = app.operate("POST", f"{image_path(resolve_fingerprint(app, name))}/refresh",
                         label=f"Refreshing {name}")
        refreshed = (op.get("metadata") or {}).get("refreshed")
        app.echo(f"Image {name} refreshed" if refreshed else f"Image {name} is up to date")


@image.command()
@click.argument("image_name", metavar="[REMOTE:]IMAGE", type=ON_SERVER)
def edit(image_name: str) -> None:
    """Edit an image's properties, public and auto_update flags as YAML ($EDITOR, or
    stdin when it is not a terminal).

    \b
    Examples:
      lxmgr image edit debian
      echo 'properties: {description: base}' | lxmgr image edit debian
    """
    from lxmgr.cli.commands.config import edit_text
    from lxmgr.cli.terminal import parse_yaml, render_yaml
    from lxmgr.errors import InvalidConfig

    app = get_app()
    path = image_path(resolve_fingerprint(app, image_name))
    img = app.query("GET", path) or {}
    current = {"auto_update": bool(img.get("auto_update")), "public": bool(img.get("public")),
               "properties": dict(img.get("properties") or {})}
    data = parse_yaml(edit_text(app, render_yaml(current), f"image '{image_name}'"),
                      f"image '{image_name}'") or {}
    if not isinstance(data, dict) or not isinstance(data.get("properties") or {}, dict):
        raise InvalidConfig(f"Invalid YAML for image '{image_name}': expected a mapping with "
                            "a 'properties' mapping")
    body = {"properties": {str(k): str(v) for k, v in (data.get("properties") or {}).items()},
            "public": bool(data.get("public")), "auto_update": bool(data.get("auto_update"))}
    app.query("PUT", path, body=body)
