"""`lxmgr config trust list|add|remove`: the TLS clients the server trusts (`lxc config
trust`). `add --name N` prints a single-use trust token for a new client; `add FILE` trusts a
certificate file. Needs core.https_address for tokens (they carry the server's address)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import render


@click.group()
def trust() -> None:
    """Manage trusted TLS client certificates and trust tokens.

    \b
    Examples:
      lxmgr config trust add --name web-panel
      lxmgr config trust add client.crt --name ci
      lxmgr config trust list
    """


@trust.command("list")
@click.argument("remote", required=False, metavar="[REMOTE:]", type=ON_SERVER)
@format_option
def list_(remote: str | None, fmt: str) -> None:
    """List trusted client certificates.

    \b
    Examples:
      lxmgr config trust list
      lxmgr config trust list prod:
    """
    app = get_app()
    if remote:
        app.abort(f"Expected REMOTE: (a remote name and a colon), not '{remote}'")
    certs = app.query("GET", "/1.0/certificates", params={"recursion": 1}) or []
    rows = [[str(c.get("name", "")), str(c.get("type", "")),
             str(c.get("fingerprint", ""))[:12]] for c in certs]
    app.echo(render(fmt, ["NAME", "TYPE", "FINGERPRINT"], rows, certs))


@trust.command()
@click.argument("args", nargs=-1, metavar="[REMOTE:] [CERT.crt]")
@click.option("--name", default="", help="Name of the client (required for a token).")
def add(args: tuple[str, ...], name: str) -> None:
    """Trust a certificate file, or (without one) print a trust token for a new client.

    \b
    Examples:
      lxmgr config trust add --name web-panel
      lxmgr config trust add ci.crt --name ci
      lxmgr config trust add prod: --name laptop
    """
    app = get_app()
    if args and args[0].endswith(":") and "/" not in args[0]:
        app.target(args[0])
        args = args[1:]
    if len(args) > 1:
        app.abort(f"Unexpected argument '{args[1]}': give at most one certificate file")
    certificate = args[0] if args else None
    if certificate is None:
        if not name:
            app.abort("Give --name for the client the token is for")
        response = app.client.request("POST", "/1.0/certificates",
                                      body={"name": name, "token": True})
        response.raise_for_error()
        token = ((response.envelope or {}).get("metadata") or {}).get("metadata", {})
        app.echo(f"Client {name} certificate add token:\n{token.get('token', '')}")
        return
    path = Path(certificate)
    if not path.is_file():
        app.abort(f"No such certificate file '{path}'")
    app.query("POST", "/1.0/certificates", body={
        "name": name or path.stem, "type": "client", "certificate": path.read_text()})


@trust.command()
@click.argument("fingerprint", metavar="[REMOTE:]FINGERPRINT", type=ON_SERVER)
def remove(fingerprint: str) -> None:
    """Stop trusting a certificate (by fingerprint or a unique prefix).

    \b
    Examples:
      lxmgr config trust remove 3f2a9c1b
    """
    app = get_app()
    app.query("DELETE", f"/1.0/certificates/{quote(fingerprint, safe='')}")
