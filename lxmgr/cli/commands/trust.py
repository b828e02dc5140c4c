"""`lxmgr config trust list|add|show|edit|remove`: the TLS clients the server trusts (`lxc
config trust`, LXD 5.0 lxc/config_trust.go). `add --name N` prints a single-use trust token for
a new client; `add FILE` trusts a certificate file; `--restricted --projects a,b` confines
either to those projects (the token passes it on to the certificate that joins with it).
`show`/`edit` read and PUT a certificate's name, restricted and projects. Needs
core.https_address for tokens (they carry the server's address)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.objects import get_object, put_object
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import parse_yaml, render, render_yaml
from lxmgr.errors import InvalidConfig

# LXD 5.0's columns, then incus's RESTRICTED and PROJECTS (cmd/incus/config_trust.go, column
# letters r and p): lxc 5.0 shows those two only in --format json/yaml.
LIST_HEADERS = ["TYPE", "NAME", "COMMON NAME", "FINGERPRINT", "ISSUE DATE", "EXPIRY DATE",
                "RESTRICTED", "PROJECTS"]
# LXD's CertificatePut (shared/api/certificate.go), what edit sends; show adds the fingerprint.
PUT_FIELDS = ("name", "type", "restricted", "projects", "certificate")
SHOW_FIELDS = (*PUT_FIELDS, "fingerprint")
EDIT_HELP = """### This is a YAML representation of the certificate.
### Any line starting with a '# will be ignored.
###
### Note that the fingerprint is shown but cannot be changed"""
# LXD refuses the same since 2026 (lxd/certificates.go): unrestricted, projects are ignored.
PROJECTS_NEED_RESTRICTED = "Projects can only be specified for restricted certificates"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def certificate_path(fingerprint: str) -> str:
    return f"/1.0/certificates/{quote(fingerprint, safe='')}"


def format_cert_date(when: datetime) -> str:
    """Go's layout "Jan 2, 2006 at 3:04pm (MST)", as lxc prints a certificate's dates."""
    when = when.astimezone(UTC)
    half = "pm" if when.hour >= 12 else "am"
    return (f"{MONTHS[when.month - 1]} {when.day}, {when.year} at "
            f"{when.hour % 12 or 12}:{when.minute:02d}{half} (UTC)")


def _certificate_facts(pem: str) -> tuple[str, str, str]:
    """(common name, issue date, expiry date) of a PEM; blanks when it does not parse."""
    from cryptography.x509.oid import NameOID

    from lxmgr.api.certificate import load_certificate

    try:
        cert = load_certificate(pem)
    except InvalidConfig:
        return "", "", ""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else ""
    # not_valid_*_utc since cryptography 42; the naive forms (UTC) before it.
    issued = getattr(cert, "not_valid_before_utc", None) or \
        cert.not_valid_before.replace(tzinfo=UTC)
    expires = getattr(cert, "not_valid_after_utc", None) or \
        cert.not_valid_after.replace(tzinfo=UTC)
    return common, format_cert_date(issued), format_cert_date(expires)


def list_row(cert: dict[str, Any]) -> list[str]:
    """One `config trust list` row: lxc 5.0's six cells, then restricted and projects."""
    common, issued, expires = _certificate_facts(str(cert.get("certificate") or ""))
    projects = sorted(str(p) for p in cert.get("projects") or [])
    return [str(cert.get("type", "")), str(cert.get("name", "")), common,
            str(cert.get("fingerprint", ""))[:12], issued, expires,
            "yes" if cert.get("restricted") else "no", "\n".join(projects)]


def parse_projects(text: str) -> list[str]:
    """--projects a,b as lxc splits it (blank entries dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_certificate_yaml(text: str, fingerprint: str) -> dict[str, Any]:
    """The CertificatePut a user typed (editor or stdin); InvalidConfig names the culprit."""
    what = f"certificate '{fingerprint}'"
    data = parse_yaml(text, what) or {}
    if not isinstance(data, dict):
        raise InvalidConfig(f"Invalid YAML for {what}: expected a mapping")
    unknown = sorted(str(key) for key in data if key not in SHOW_FIELDS)
    if unknown:
        raise InvalidConfig(f"Unknown key '{unknown[0]}' in {what}")
    put: dict[str, Any] = {}
    for key, kind, default in (("name", str, ""), ("type", str, ""), ("restricted", bool, False),
                               ("projects", list, []), ("certificate", str, "")):
        value = data.get(key)
        if value is None:
            value = default
        if not isinstance(value, kind):
            raise InvalidConfig(f"Invalid '{key}' in {what}: expected {_kind_name(kind)}")
        put[key] = value
    if not all(isinstance(p, str) for p in put["projects"]):
        raise InvalidConfig(f"Invalid 'projects' in {what}: expected a list of project names")
    if put["projects"] and not put["restricted"]:
        raise InvalidConfig(f"{PROJECTS_NEED_RESTRICTED}: set 'restricted: true' or remove "
                            "'projects'")
    return put


def _kind_name(kind: type) -> str:
    return {str: "a string", bool: "true or false", list: "a list"}[kind]


@click.group()
def trust() -> None:
    """Manage trusted TLS client certificates and trust tokens.

    \b
    Examples:
      lxmgr config trust add --name web-panel
      lxmgr config trust add --name panel --restricted --projects web,ci
      lxmgr config trust add client.crt --name ci
      lxmgr config trust list
      lxmgr config trust show 3f2a9c1b
      lxmgr config trust edit 3f2a9c1b
    """


@trust.command("list")
@click.argument("remote", required=False, metavar="[REMOTE:]", type=ON_SERVER)
@format_option
def list_(remote: str | None, fmt: str) -> None:
    """List trusted client certificates, with whether each is restricted and to which
    projects.

    \b
    Examples:
      lxmgr config trust list
      lxmgr config trust list prod:
      lxmgr config trust list --format yaml
    """
    app = get_app()
    if remote:
        app.abort(f"Expected REMOTE: (a remote name and a colon), not '{remote}'")
    certs = app.query("GET", "/1.0/certificates", params={"recursion": 1}) or []
    rows = sorted(list_row(cert) for cert in certs)
    app.echo(render(fmt, LIST_HEADERS, rows, certs))


@trust.command()
@click.argument("args", nargs=-1, metavar="[REMOTE:] [CERT.crt]")
@click.option("--name", default="", help="Name of the client (required for a token).")
@click.option("--restricted", is_flag=True,
              help="Restrict the certificate to the projects of --projects (none without).")
@click.option("--projects", default="", metavar="P1,P2",
              help="Projects to restrict the certificate to (requires --restricted).")
def add(args: tuple[str, ...], name: str, restricted: bool, projects: str) -> None:
    """Trust a certificate file, or (without one) print a trust token for a new client.

    A restricted certificate (or the one that joins with a restricted token) works only in
    its projects: it sees no other, and changes nothing server-wide.

    \b
    Examples:
      lxmgr config trust add --name web-panel
      lxmgr config trust add --name panel --restricted --projects web,ci
      lxmgr config trust add ci.crt --name ci
      lxmgr config trust add prod: --name laptop
    """
    app = get_app()
    if args and args[0].endswith(":") and "/" not in args[0]:
        app.target(args[0])
        args = args[1:]
    if len(args) > 1:
        app.abort(f"Unexpected argument '{args[1]}': give at most one certificate file")
    names = parse_projects(projects)
    if names and not restricted:
        app.abort(f"{PROJECTS_NEED_RESTRICTED}: add --restricted")
    restriction = {"restricted": restricted, "projects": names}
    certificate = args[0] if args else None
    if certificate is None:
        if not name:
            app.abort("Give --name for the client the token is for")
        response = app.client.request("POST", "/1.0/certificates",
                                      body={"name": name, "token": True, **restriction})
        response.raise_for_error()
        token = ((response.envelope or {}).get("metadata") or {}).get("metadata", {})
        app.echo(f"Client {name} certificate add token:\n{token.get('token', '')}")
        return
    path = Path(certificate)
    if not path.is_file():
        app.abort(f"No such certificate file '{path}'")
    app.query("POST", "/1.0/certificates", body={
        "name": name or path.stem, "type": "client", "certificate": path.read_text(),
        **restriction})


@trust.command()
@click.argument("fingerprint", metavar="[REMOTE:]FINGERPRINT", type=ON_SERVER)
def show(fingerprint: str) -> None:
    """Show a trusted certificate as YAML (by fingerprint or a unique prefix).

    \b
    Examples:
      lxmgr config trust show 3f2a9c1b
      lxmgr config trust show prod:3f2a9c1b
    """
    app = get_app()
    if not fingerprint:
        app.abort("Missing certificate fingerprint")
    data, _ = get_object(app, certificate_path(fingerprint))
    app.echo(render_yaml({key: data[key] for key in SHOW_FIELDS if key in data}))


@trust.command()
@click.argument("fingerprint", metavar="[REMOTE:]FINGERPRINT", type=ON_SERVER)
def edit(fingerprint: str) -> None:
    """Edit a trusted certificate's name, restricted and projects as YAML in $EDITOR (or
    from stdin).

    \b
    Examples:
      lxmgr config trust edit 3f2a9c1b
      lxmgr config trust show 3f2a9c1b > c.yaml; lxmgr config trust edit 3f2a9c1b < c.yaml
    """
    from lxmgr.cli.commands.config import edit_text  # config imports this module

    app = get_app()
    if not fingerprint:
        app.abort("Missing certificate fingerprint")
    data, etag = get_object(app, certificate_path(fingerprint))
    shown = render_yaml({key: data[key] for key in SHOW_FIELDS if key in data})
    text = edit_text(app, f"{EDIT_HELP}\n\n{shown}\n", f"certificate '{fingerprint}'")
    put_object(app, certificate_path(fingerprint),
               parse_certificate_yaml(text, fingerprint), etag)


@trust.command()
@click.argument("fingerprint", metavar="[REMOTE:]FINGERPRINT", type=ON_SERVER)
def remove(fingerprint: str) -> None:
    """Stop trusting a certificate (by fingerprint or a unique prefix).

    \b
    Examples:
      lxmgr config trust remove 3f2a9c1b
    """
    app = get_app()
    app.query("DELETE", certificate_path(fingerprint))
