"""`lxmgr remote ...`: the servers and image servers this client knows (`lxc remote`)."""

from __future__ import annotations

import sys

import click

from lxmgr.cli.options import format_option, get_app
from lxmgr.cli.remotes import config_path
from lxmgr.cli.terminal import render


@click.group()
def remote() -> None:
    """Manage remotes: lxmgr (or LXD) servers reached over HTTPS, and image servers.

    `local` is this host's lxmgrd. A server added with a trust token (from `lxmgr config
    trust add` on it) is then named as REMOTE: in every verb.

    \b
    Examples:
      lxmgr remote add prod 192.0.2.10 --token TOKEN
      lxmgr remote add prod TOKEN
      lxmgr list prod:
      lxmgr exec prod:web1 -- hostname
      lxmgr remote switch prod
      lxmgr remote rename prod production
      lxmgr remote add mirror https://images.example.org
      lxmgr launch mirror:debian/12 web1
    """


@remote.command("list")
@format_option
def list_(fmt: str) -> None:
    """List remotes; the default one is marked (current).

    \b
    Examples:
      lxmgr remote list
    """
    from lxmgr.cli.remotes import default_remote
    from lxmgr.images.remotes import load_remotes

    current = default_remote()
    remotes = sorted(load_remotes(config_path()).values(), key=lambda r: r.name)
    rows = [[r.name + (" (current)" if r.name == current else "")
             + (" (default)" if r.default_alias else ""), r.url, r.protocol,
             "tls" if r.url.startswith("https://") and r.is_server else "none",
             "YES" if r.public else "NO", "YES" if r.builtin else "NO"] for r in remotes]
    get_app().echo(render(fmt, ["NAME", "URL", "PROTOCOL", "AUTH TYPE", "PUBLIC", "STATIC"],
                          rows, [{**r.to_dict(), "current": r.name == current}
                                 for r in remotes]))


@remote.command()
@click.argument("name")
@click.argument("address", metavar="[ADDRESS|TOKEN]", required=False)
@click.option("--token", help="Trust token from `lxmgr config trust add` on the server.")
@click.option("--accept-certificate", is_flag=True,
              help="Accept the server's certificate without asking (no token).")
@click.option("--protocol", type=click.Choice(["lxd", "simplestreams"]), default=None,
              help="lxd: an lxmgr or LXD server (the default with a token or a host); "
                   "simplestreams: an image server (the default for an https:// URL).")
@click.option("--public/--private", default=True,
              help="Image servers: whether it needs no credentials.")
def add(name: str, address: str | None, token: str | None, accept_certificate: bool,
        protocol: str | None, public: bool) -> None:
    """Add a remote: a server at ADDRESS (HOST[:PORT], default port 8443, or unix:///SOCKET)
    or named by a trust TOKEN alone, or an image server at an https:// URL.

    A server's certificate is pinned: the token's fingerprint, or, without a token, one you
    accept. Then this client's certificate joins the server's trust store with the token.

    \b
    Examples:
      lxmgr remote add prod 192.0.2.10 --token TOKEN
      lxmgr remote add prod TOKEN
      lxmgr remote add lab https://lab.example.org:8443 --accept-certificate
      lxmgr remote add mirror https://images.example.org
    """
    from lxmgr.cli.remotes import add_server, looks_like_token

    app = get_app()
    if address and token is None and looks_like_token(address):
        address, token = None, address
    if protocol is None:
        is_image_server = address is not None and address.startswith(("https://", "http://")) \
            and token is None and not accept_certificate
        protocol = "simplestreams" if is_image_server else "lxd"
    if protocol == "simplestreams":
        if address is None or token is not None:
            app.abort("An image server takes a URL and no token")
        from lxmgr.images.remotes import add_remote

        add_remote(config_path(), name, address, protocol=protocol, public=public)
        return

    def confirm(fingerprint: str) -> bool:
        if not sys.stdin.isatty():
            return False
        return click.confirm(f"Certificate fingerprint: {fingerprint}\nok", default=False)

    added, joined = add_server(name, address, token=token,
                               accept_certificate=accept_certificate, confirm=confirm)
    if joined:
        app.echo(f"Client certificate now trusted by {added.url}")
    app.echo(f"Remote {name} added ({added.url})")


@remote.command()
@click.argument("name")
def remove(name: str) -> None:
    """Remove a remote (built-in ones stay); its pinned certificate goes too.

    \b
    Examples:
      lxmgr remote remove mirror
    """
    from lxmgr.cli.remotes import remove_server_files
    from lxmgr.images.remotes import remove_remote

    remove_remote(config_path(), name)
    remove_server_files(name)


@remote.command()
@click.argument("old")
@click.argument("new")
def rename(old: str, new: str) -> None:
    """Rename a remote (its pinned certificate and the default follow).

    \b
    Examples:
      lxmgr remote rename prod production
    """
    from lxmgr.cli.remotes import rename_server_files
    from lxmgr.images.remotes import rename_remote

    rename_remote(config_path(), old, new)
    rename_server_files(old, new)


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
def set_url(name: str, url: str) -> None:
    """Point a remote at another URL (a server that moved keeps its pinned certificate).

    \b
    Examples:
      lxmgr remote set-url prod https://192.0.2.20:8443
    """
    from lxmgr.images.remotes import set_remote_url

    set_remote_url(config_path(), name, url)


@remote.command()
@click.argument("name")
def switch(name: str) -> None:
    """Make NAME the default server: bare instance names then refer to it.

    \b
    Examples:
      lxmgr remote switch prod
      lxmgr remote switch local
    """
    from lxmgr.images.remotes import set_default_remote

    set_default_remote(config_path(), name)


@remote.command("get-default")
def get_default() -> None:
    """Print the default server remote.

    \b
    Examples:
      lxmgr remote get-default
    """
    from lxmgr.cli.remotes import default_remote

    get_app().echo(default_remote())
