"""`lxmgr network forward ...`: request paths and bodies, list/show output, port add/remove
as `lxc network forward` does them, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import yaml
from click.testing import Result

from lxmgr import errors
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

BASE = "/1.0/networks/lxmgrbr0/forwards"
PATH = f"{BASE}/192.0.2.10"
PORT = {"description": "", "protocol": "tcp", "listen_port": "80,443", "target_port": "",
        "target_address": "10.99.0.60"}
FWD = {"listen_address": "192.0.2.10", "description": "web",
       "config": {"target_address": "10.99.0.50"}, "ports": [PORT], "location": ""}


def _put(fwd: dict) -> dict:  # type: ignore[type-arg]
    return {"description": fwd["description"], "config": fwd["config"], "ports": fwd["ports"]}


def test_list_table_and_json(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", BASE)] = [FWD]
    result = run("network", "forward", "list", "lxmgrbr0")
    assert result.exit_code == 0, result.output
    assert fake.last("GET", BASE).params == {"recursion": 1}
    lines = result.output.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "LISTEN ADDRESS", "DESCRIPTION", "DEFAULT TARGET ADDRESS", "PORTS"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == [
        "192.0.2.10", "web", "10.99.0.50", "1"]
    assert json.loads(run("network", "forward", "list", "lxmgrbr0", "-f", "json").output) == \
        [FWD]


def test_show(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = FWD
    shown = yaml.safe_load(run("network", "forward", "show", "lxmgrbr0", "192.0.2.10").output)
    assert shown == FWD


def test_create_with_keys_and_description(run: Run, fake: FakeClient) -> None:
    result = run("network", "forward", "create", "lxmgrbr0", "192.0.2.10",
                 "target_address=10.99.0.50", "--description", "web", input="")
    assert result.exit_code == 0, result.output
    assert result.output == "Network forward 192.0.2.10 created\n"
    assert fake.last("POST", BASE).body == {
        "listen_address": "192.0.2.10", "description": "web",
        "config": {"target_address": "10.99.0.50"}, "ports": []}


def test_create_from_yaml_on_stdin(run: Run, fake: FakeClient) -> None:
    text = ("description: from yaml\nports:\n- protocol: tcp\n  listen_port: 80\n"
            "  target_address: 10.99.0.60\n")
    result = run("network", "forward", "create", "lxmgrbr0", "192.0.2.10", input=text)
    assert result.exit_code == 0, result.output
    assert fake.last("POST", BASE).body["ports"] == [
        {"protocol": "tcp", "listen_port": "80", "target_address": "10.99.0.60"}]
    bad = run("network", "forward", "create", "lxmgrbr0", "192.0.2.10", input="ports: 80\n")
    assert bad.exit_code == 1 and "Invalid YAML for network forward '192.0.2.10'" in bad.output


def test_edit_from_stdin_puts_description_config_ports(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = FWD
    text = "description: new\nconfig: {}\nports: []\n"
    result = run("network", "forward", "edit", "lxmgrbr0", "192.0.2.10", input=text)
    assert result.exit_code == 0, result.output
    call = fake.last("PUT", PATH)
    assert call.body == {"description": "new", "config": {}, "ports": []}
    assert call.headers == {"If-Match": "etag-1"}


def test_set_unset_get(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = FWD
    assert run("network", "forward", "set", "lxmgrbr0", "192.0.2.10", "user.a=1").exit_code == 0
    assert fake.last("PUT", PATH).body == _put(
        {**FWD, "config": {"target_address": "10.99.0.50", "user.a": "1"}})
    assert run("network", "forward", "unset", "lxmgrbr0", "192.0.2.10",
               "target_address").exit_code == 0
    assert fake.last("PUT", PATH).body == _put({**FWD, "config": {}})
    missing = run("network", "forward", "unset", "lxmgrbr0", "192.0.2.10", "user.zz")
    assert missing.exit_code == 1
    assert "Can't unset key 'user.zz', it's not currently set" in missing.output
    assert run("network", "forward", "get", "lxmgrbr0", "192.0.2.10",
               "target_address").output == "10.99.0.50\n"


def test_port_add(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = FWD
    result = run("network", "forward", "port", "add", "lxmgrbr0", "192.0.2.10", "udp",
                 "5000-5009", "10.99.0.61", "6000-6009", "--description", "games")
    assert result.exit_code == 0, result.output
    assert fake.last("PUT", PATH).body["ports"] == [PORT, {
        "description": "games", "protocol": "udp", "listen_port": "5000-5009",
        "target_port": "6000-6009", "target_address": "10.99.0.61"}]
    bad = run("network", "forward", "port", "add", "lxmgrbr0", "192.0.2.10", "sctp", "80",
              "10.99.0.61")
    assert bad.exit_code == 2 and "'sctp' is not one of 'tcp', 'udp'" in bad.output


def test_port_remove_matches_like_lxc(run: Run, fake: FakeClient) -> None:
    udp = {**PORT, "protocol": "udp", "listen_port": "53"}
    fake.answers[("GET", PATH)] = {**FWD, "ports": [PORT, udp]}
    assert run("network", "forward", "port", "remove", "lxmgrbr0", "192.0.2.10", "tcp",
               "80,443").exit_code == 0
    assert fake.last("PUT", PATH).body["ports"] == [udp]
    none = run("network", "forward", "port", "remove", "lxmgrbr0", "192.0.2.10", "tcp", "22")
    assert none.exit_code == 1 and "Error: No matching port(s) found" in none.output
    many = run("network", "forward", "port", "remove", "lxmgrbr0", "192.0.2.10")
    assert many.exit_code == 1
    assert "Error: Multiple ports match. Use --force to remove them all" in many.output
    assert run("network", "forward", "port", "remove", "lxmgrbr0", "192.0.2.10",
               "--force").exit_code == 0
    assert fake.last("PUT", PATH).body["ports"] == []


def test_delete_and_daemon_errors_are_one_line(run: Run, fake: FakeClient) -> None:
    result = run("network", "forward", "delete", "lxmgrbr0", "192.0.2.10")
    assert result.exit_code == 0 and result.output == "Network forward 192.0.2.10 deleted\n"
    assert fake.mutations() == [("DELETE", PATH)]
    fake.answers[("DELETE", f"{BASE}/192.0.2.11")] = errors.NotFound(
        "Network forward not found")
    result = run("network", "forward", "delete", "lxmgrbr0", "192.0.2.11")
    assert result.exit_code == 1 and result.output == "Error: Network forward not found\n"
