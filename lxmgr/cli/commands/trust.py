"""`lxmgr config trust list|add|remove`: the TLS clients the server trusts (`lxc config
trust`). `add --name N` prints a single-use trust token for a new client; `add FILE` trusts a
certificate file. Needs core.https_address for tokens (they carry the server's address)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from lxmgr.cli.options import format_option, get_app
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
@format_option
def list_(fmt: str) -> None:
    """List trusted client certificates.

    \b
    Examples:
      lxmgr config trust list
    """
    app = get_app()
    certs = app.query("GET", "/1.0/certificates", params={"recursion": 1}) or []
    rows = [[str(c.get("name", "")), str(c.get("type", "")),
             str(c.get("fingerprint", ""))[:12]] for c in certs]
    app.echo(render(fmt, ["NAME", "TYPE", "FINGERPRINT"], rows, certs))


@trust.command()
@click.argument("certificate", required=False, metavar="[CERT.crt]")
@click.option("--name", default="", help="Name of the client (required for a token).")
def add(certificate: str | None, name: str) -> None:
    """Trust a certificate file, or (without one) print a trust token for a new client.

    \b
    Examples:
      lxmgr config trust add --name web-panel
      lxmgr config trust add ci.crt --name ci
    """
    app = get_app()
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
@click.argument("fingerprint")
def remove(fingerprint: str) -> None:
    """Stop trusting a certificate (by fingerprint or a unique prefix).

    \b
    Examples:
      lxmgr config trust remove 3f2a9c1b
    """
    app = get_app()
    app.query("DELETE", f"/1.0/certificates/{quote(fingerprint, safe='')}")
