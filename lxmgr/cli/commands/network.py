"""`lxmgr network ...`: managed bridges, their config, state and DHCP leases (`lxc network`).

Talks to /1.0/networks only, through the client; the daemon validates network config keys.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.commands.config import edit_text, get_object, put_object, unset_keys
from lxmgr.cli.commands.network_forward import forward
from lxmgr.cli.completion import complete_networks
from lxmgr.cli.objects import described_put, parse_described_yaml
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import (
    format_size,
    parse_assignments,
    render,
    render_yaml,
)

# `lxc network show` order; what edit shows (only description and config are written).
SHOW_FIELDS = ("name", "description", "type", "managed", "status", "config", "used_by",
               "locations", "project")
EDIT_FIELDS = ("name", "description", "type", "config")
LIST_HEADERS = ["NAME", "TYPE", "MANAGED", "IPV4", "IPV6", "DESCRIPTION", "USED BY", "STATE"]
LEASE_HEADERS = ["HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"]


def network_path(name: str, *rest: str) -> str:
    return "/".join([f"/1.0/networks/{quote(name, safe='')}", *rest])


network_put = described_put  # the NetworkPut part (description, config)


def parse_network_text(text: str, name: str) -> dict[str, Any]:
    """description/config/type from YAML typed by a user; config values coerced to strings."""
    data, result = parse_described_yaml(text, f"network '{name}'")
    if data.get("type"):
        result["type"] = str(data["type"])
    return result


def _list_row(net: dict[str, Any]) -> list[str]:
    config = net.get("config") or {}
    return [str(net.get("name", "")), str(net.get("type", "")),
            "YES" if net.get("managed") else "NO",
            str(config.get("ipv4.address", "")), str(config.get("ipv6.address", "")),
            str(net.get("description", "")), str(len(net.get("used_by") or [])),
            str(net.get("status", "")).upper()]


def render_network_info(name: str, state: dict[str, Any]) -> str:
    """`lxc network info`'s layout: link fields, IP addresses, then counters."""
    lines = [f"Name: {name}", f"MAC address: {state.get('hwaddr', '')}",
             f"MTU: {state.get('mtu', '')}", f"State: {state.get('state', '')}",
             f"Type: {state.get('type', '')}"]
    addresses = state.get("addresses") or []
    if addresses:
        lines += ["", "IP addresses:"]
        lines += [f"  {a.get('family')}\t{a.get('address')}/{a.get('netmask')} "
                  f"({a.get('scope')})" for a in addresses]
    counters = state.get("counters") or {}
    lines += ["", "Network usage:",
              f"  Bytes received: {format_size(counters.get('bytes_received', 0))}",
              f"  Bytes sent: {format_size(counters.get('bytes_sent', 0))}",
              f"  Packets received: {counters.get('packets_received', 0)}",
              f"  Packets sent: {counters.get('packets_sent', 0)}"]
    return "\n".join(lines)


@click.group()
def network() -> None:
    """Manage networks: bridges with DHCP, DNS and NAT for instances.

    \b
    Examples:
      lxmgr network list
      lxmgr network create testbr0 ipv4.address=10.99.0.1/24 ipv4.nat=false
      lxmgr network set testbr0 dns.domain=test
      lxmgr network list-leases lxmgrbr0
      lxmgr config device add web1 eth1 nic network=testbr0 name=eth1
    """


network.add_command(forward)


@network.command("list")
@format_option
def list_(fmt: str) -> None:
    """List networks.

    \b
    Examples:
      lxmgr network list
      lxmgr network list --format json
    """
    app = get_app()
    networks = sorted(app.query("GET", "/1.0/networks", params={"recursion": 1}) or [],
                      key=lambda n: str(n.get("name", "")))
    app.echo(render(fmt, LIST_HEADERS, [_list_row(n) for n in networks], networks))


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
def show(name: str) -> None:
    """Show a network as YAML.

    \b
    Examples:
      lxmgr network show lxmgrbr0
    """
    app = get_app()
    net, _ = get_object(app, network_path(name))
    app.echo(render_yaml({key: net[key] for key in SHOW_FIELDS if key in net}))


@network.command()
@click.argument("name", type=ON_SERVER)
@click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-t", "--type", "type_", default="bridge", show_default=True,
              help="Network type.")
@click.option("-d", "--description", default=None, help="Network description.")
def create(name: str, assignments: tuple[str, ...], type_: str, description: str | None) -> None:
    """Create a network (config from KEY=VALUE arguments, or YAML on stdin).

    Without ipv4.address the daemon picks a free /24 (`auto`).

    \b
    Examples:
      lxmgr network create testbr0
      lxmgr network create testbr0 ipv4.address=10.99.0.1/24 ipv4.nat=false ipv6.address=none
      lxmgr network create testbr0 --description "Test bridge" < testbr0.yaml
    """
    app = get_app()
    body: dict[str, Any] = {"name": name, "description": "", "type": type_, "config": {}}
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.strip():
            body.update(parse_network_text(text, name))
    body["config"].update(parse_assignments(assignments, "config") if assignments else {})
    if description is not None:
        body["description"] = description
    app.query("POST", "/1.0/networks", body=body)
    app.echo(f"Network {name} created")


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
def edit(name: str) -> None:
    """Edit a network's description and config as YAML in $EDITOR (or from stdin).

    \b
    Examples:
      lxmgr network edit lxmgrbr0
      lxmgr network show testbr0 > net.yaml; lxmgr network edit testbr0 < net.yaml
    """
    app = get_app()
    net, etag = get_object(app, network_path(name))
    shown = {key: net[key] for key in EDIT_FIELDS if key in net}
    text = edit_text(app, render_yaml(shown) + "\n", f"network '{name}'")
    put_object(app, network_path(name), network_put(parse_network_text(text, name)), etag)


@network.command("set")
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set network config keys (KEY=VALUE..., or KEY VALUE).

    \b
    Examples:
      lxmgr network set lxmgrbr0 ipv4.dhcp.ranges=10.99.0.100-10.99.0.200
      lxmgr network set lxmgrbr0 bridge.mtu 1400
    """
    app = get_app()
    values = parse_assignments(assignments, "config")
    app.query("PATCH", network_path(name), body={"config": values})


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def unset(name: str, keys: tuple[str, ...]) -> None:
    """Remove network config keys (back to their defaults).

    \b
    Examples:
      lxmgr network unset lxmgrbr0 ipv4.dhcp.ranges
    """
    app = get_app()
    net, etag = get_object(app, network_path(name))
    put = network_put(net)
    unset_keys(app, put["config"], keys)
    put_object(app, network_path(name), put, etag)


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("key")
def get(name: str, key: str) -> None:
    """Print one network config value (empty when unset).

    \b
    Examples:
      lxmgr network get lxmgrbr0 ipv4.address
    """
    app = get_app()
    net, _ = get_object(app, network_path(name))
    app.echo(str((net.get("config") or {}).get(key, "")))


@network.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...",
                type=ON_SERVER, shell_complete=complete_networks)
def delete(names: tuple[str, ...]) -> None:
    """Delete networks (not while an instance or profile uses them).

    \b
    Examples:
      lxmgr network delete testbr0
    """
    app = get_app()
    for name in names:
        app.query("DELETE", network_path(name))
        app.echo(f"Network {name} deleted")


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
@click.argument("new_name")
def rename(name: str, new_name: str) -> None:
    """Rename a network.

    \b
    Examples:
      lxmgr network rename testbr0 labbr0
    """
    app = get_app()
    app.query("POST", network_path(name), body={"name": new_name})
    app.echo(f"Network {name} renamed to {new_name}")


@network.command()
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
def info(name: str) -> None:
    """Show a network's link state, addresses and traffic counters.

    \b
    Examples:
      lxmgr network info lxmgrbr0
    """
    app = get_app()
    state = app.query("GET", network_path(name, "state")) or {}
    app.echo(render_network_info(name, state))


@network.command("list-leases")
@click.argument("name", type=ON_SERVER, shell_complete=complete_networks)
@format_option
def list_leases(name: str, fmt: str) -> None:
    """List the DHCP leases and static reservations of a network.

    \b
    Examples:
      lxmgr network list-leases lxmgrbr0
      lxmgr network list-leases lxmgrbr0 --format csv
    """
    app = get_app()
    leases = app.query("GET", network_path(name, "leases")) or []
    rows = [[str(lease.get("hostname", "")), str(lease.get("hwaddr", "")),
             str(lease.get("address", "")), str(lease.get("type", "")).upper()]
            for lease in leases]
    app.echo(render(fmt, LEASE_HEADERS, rows, leases))
