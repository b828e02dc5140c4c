"""`lxmgr network forward ...`: a managed bridge's network forwards (`lxc network forward`).

Talks to /1.0/networks/NAME/forwards only, through the client; the daemon validates listen
addresses, ports and targets.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.commands.config import edit_text, unset_keys
from lxmgr.cli.completion import complete_networks
from lxmgr.cli.objects import get_object, put_object
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import parse_assignments, parse_yaml, render, render_yaml

LIST_HEADERS = ["LISTEN ADDRESS", "DESCRIPTION", "DEFAULT TARGET ADDRESS", "PORTS"]
SHOW_FIELDS = ("description", "config", "ports", "listen_address", "location")


def forwards_path(network: str, *rest: str) -> str:
    return "/".join([f"/1.0/networks/{quote(network, safe='')}/forwards",
                     *(quote(r, safe="") for r in rest)])


def forward_put(forward: dict[str, Any]) -> dict[str, Any]:
    """The NetworkForwardPut part (description, config, ports)."""
    return {"description": str(forward.get("description") or ""),
            "config": dict(forward.get("config") or {}),
            "ports": [dict(p) for p in forward.get("ports") or []]}


def parse_forward_text(text: str, what: str) -> dict[str, Any]:
    """description/config/ports from YAML typed by a user; values coerced to strings."""
    from lxmgr.errors import InvalidConfig

    data = parse_yaml(text, what) or {}
    if not isinstance(data, dict) or not isinstance(data.get("config") or {}, dict) \
            or not isinstance(data.get("ports") or [], list) \
            or not all(isinstance(p, dict) for p in data.get("ports") or []):
        raise InvalidConfig(f"Invalid YAML for {what}: expected a mapping with a 'config' "
                            "mapping and a 'ports' list of mappings")
    put = forward_put(data)
    put["config"] = {str(k): _text(v) for k, v in put["config"].items()}
    put["ports"] = [{str(k): _text(v) for k, v in p.items()} for p in put["ports"]]
    return put


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _row(forward: dict[str, Any]) -> list[str]:
    return [str(forward.get("listen_address", "")), str(forward.get("description", "")),
            str((forward.get("config") or {}).get("target_address", "")),
            str(len(forward.get("ports") or []))]


@click.group()
def forward() -> None:
    """Manage network forwards: traffic to a host address DNATed into the network.

    \b
    Examples:
      lxmgr network forward list lxmgrbr0
      lxmgr network forward create lxmgrbr0 192.0.2.10 target_address=10.99.0.50
      lxmgr network forward port add lxmgrbr0 192.0.2.10 tcp 80,443 10.99.0.60
      lxmgr network forward delete lxmgrbr0 192.0.2.10
    """


@forward.command("list")
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@format_option
def list_(network: str, fmt: str) -> None:
    """List a network's forwards.

    \b
    Examples:
      lxmgr network forward list lxmgrbr0
      lxmgr network forward list lxmgrbr0 --format yaml
    """
    app = get_app()
    forwards = app.query("GET", forwards_path(network), params={"recursion": 1}) or []
    app.echo(render(fmt, LIST_HEADERS, [_row(f) for f in forwards], forwards))


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
def show(network: str, listen_address: str) -> None:
    """Show a network forward as YAML.

    \b
    Examples:
      lxmgr network forward show lxmgrbr0 192.0.2.10
    """
    app = get_app()
    found, _ = get_object(app, forwards_path(network, listen_address))
    app.echo(render_yaml({key: found[key] for key in SHOW_FIELDS if key in found}))


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-d", "--description", default=None, help="Forward description.")
def create(network: str, listen_address: str, assignments: tuple[str, ...],
           description: str | None) -> None:
    """Create a network forward (config from KEY=VALUE arguments, or YAML on stdin).

    The listen address is a host IPv4 address outside every other network (or the bridge's
    own address); target_address, the default target, is inside the network.

    \b
    Examples:
      lxmgr network forward create lxmgrbr0 192.0.2.10
      lxmgr network forward create lxmgrbr0 192.0.2.10 target_address=10.99.0.50
      lxmgr network forward create lxmgrbr0 192.0.2.10 < forward.yaml
    """
    app = get_app()
    body: dict[str, Any] = {"listen_address": listen_address, "description": "",
                            "config": {}, "ports": []}
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.strip():
            body.update(parse_forward_text(text, f"network forward '{listen_address}'"))
    body["config"].update(parse_assignments(assignments, "config") if assignments else {})
    if description is not None:
        body["description"] = description
    app.query("POST", forwards_path(network), body=body)
    app.echo(f"Network forward {listen_address} created")


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
def edit(network: str, listen_address: str) -> None:
    """Edit a network forward's description, config and ports as YAML in $EDITOR (or stdin).

    \b
    Examples:
      lxmgr network forward edit lxmgrbr0 192.0.2.10
      lxmgr network forward show lxmgrbr0 192.0.2.10 > fwd.yaml
      lxmgr network forward edit lxmgrbr0 192.0.2.10 < fwd.yaml
    """
    app = get_app()
    path = forwards_path(network, listen_address)
    found, etag = get_object(app, path)
    what = f"network forward '{listen_address}'"
    text = edit_text(app, render_yaml(forward_put(found)) + "\n", what)
    put_object(app, path, parse_forward_text(text, what), etag)


@forward.command("set")
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(network: str, listen_address: str, assignments: tuple[str, ...]) -> None:
    """Set network forward config keys (KEY=VALUE..., or KEY VALUE).

    \b
    Examples:
      lxmgr network forward set lxmgrbr0 192.0.2.10 target_address=10.99.0.51
      lxmgr network forward set lxmgrbr0 192.0.2.10 user.owner ops
    """
    app = get_app()
    path = forwards_path(network, listen_address)
    found, etag = get_object(app, path)
    put = forward_put(found)
    put["config"].update(parse_assignments(assignments, "config"))
    put_object(app, path, put, etag)


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def unset(network: str, listen_address: str, keys: tuple[str, ...]) -> None:
    """Remove network forward config keys.

    \b
    Examples:
      lxmgr network forward unset lxmgrbr0 192.0.2.10 target_address
    """
    app = get_app()
    path = forwards_path(network, listen_address)
    found, etag = get_object(app, path)
    put = forward_put(found)
    unset_keys(app, put["config"], keys)
    put_object(app, path, put, etag)


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("key")
def get(network: str, listen_address: str, key: str) -> None:
    """Print one network forward config value (empty when unset).

    \b
    Examples:
      lxmgr network forward get lxmgrbr0 192.0.2.10 target_address
    """
    app = get_app()
    found, _ = get_object(app, forwards_path(network, listen_address))
    app.echo(str((found.get("config") or {}).get(key, "")))


@forward.command()
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
def delete(network: str, listen_address: str) -> None:
    """Delete a network forward.

    \b
    Examples:
      lxmgr network forward delete lxmgrbr0 192.0.2.10
    """
    app = get_app()
    app.query("DELETE", forwards_path(network, listen_address))
    app.echo(f"Network forward {listen_address} deleted")


@forward.group()
def port() -> None:
    """Add and remove a network forward's port specifications.

    \b
    Examples:
      lxmgr network forward port add lxmgrbr0 192.0.2.10 tcp 80 10.99.0.60 8080
      lxmgr network forward port remove lxmgrbr0 192.0.2.10 tcp 80
    """


@port.command("add")
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("protocol", type=click.Choice(["tcp", "udp"]))
@click.argument("listen_ports")
@click.argument("target_address")
@click.argument("target_ports", required=False, default="")
@click.option("-d", "--description", default="", help="Port description.")
def port_add(network: str, listen_address: str, protocol: str, listen_ports: str,
             target_address: str, target_ports: str, description: str) -> None:
    """Add ports to a network forward (listen ports as 80,8000-8010; target ports: one
    port, as many as the listen ports, or none for the same ports).

    \b
    Examples:
      lxmgr network forward port add lxmgrbr0 192.0.2.10 tcp 80,443 10.99.0.60
      lxmgr network forward port add lxmgrbr0 192.0.2.10 udp 5000-5009 10.99.0.61 6000-6009
    """
    app = get_app()
    path = forwards_path(network, listen_address)
    found, etag = get_object(app, path)
    put = forward_put(found)
    put["ports"].append({"description": description, "protocol": protocol,
                         "listen_port": listen_ports, "target_port": target_ports,
                         "target_address": target_address})
    put_object(app, path, put, etag)


@port.command("remove")
@click.argument("network", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("listen_address")
@click.argument("protocol", required=False, type=click.Choice(["tcp", "udp"]))
@click.argument("listen_ports", required=False)
@click.option("--force", is_flag=True, help="Remove every matching port.")
def port_remove(network: str, listen_address: str, protocol: str | None,
                listen_ports: str | None, force: bool) -> None:
    """Remove the ports matching a protocol and listen ports (as written when added).

    \b
    Examples:
      lxmgr network forward port remove lxmgrbr0 192.0.2.10 tcp 80,443
      lxmgr network forward port remove lxmgrbr0 192.0.2.10 --force
    """
    app = get_app()
    path = forwards_path(network, listen_address)
    found, etag = get_object(app, path)
    put = forward_put(found)

    def matches(spec: dict[str, Any]) -> bool:
        return ((protocol is None or spec.get("protocol") == protocol)
                and (listen_ports is None or spec.get("listen_port") == listen_ports))
    keep = [p for p in put["ports"] if not matches(p)]
    removed = len(put["ports"]) - len(keep)
    if removed == 0:
        app.abort("No matching port(s) found")
    if removed > 1 and not force:
        app.abort("Multiple ports match. Use --force to remove them all")
    put["ports"] = keep
    put_object(app, path, put, etag)
