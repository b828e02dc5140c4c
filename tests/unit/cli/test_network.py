"""`lxmgr network ...`: request paths and bodies, list/leases/info output, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import yaml
from click.testing import Result

from lxmgr import errors
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

BR0 = {"name": "lxmgrbr0", "description": "Default bridge", "type": "bridge", "managed": True,
       "status": "Created",
       "config": {"ipv4.address": "10.99.0.1/24", "ipv4.nat": "true", "ipv6.address": "none"},
       "used_by": ["/1.0/instances/web1", "/1.0/profiles/default"], "locations": ["none"],
       "project": "default"}
ETH = {"name": "eth0", "description": "", "type": "physical", "managed": False, "status": "",
       "config": {}, "used_by": [], "locations": ["none"], "project": "default"}
PATH = "/1.0/networks/lxmgrbr0"


def test_list_table_sorted_with_lxc_columns(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/networks")] = [BR0, ETH]
    result = run("network", "list")
    assert result.exit_code == 0, result.output
    assert fake.last("GET", "/1.0/networks").params == {"recursion": 1}
    lines = result.output.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "NAME", "TYPE", "MANAGED", "IPV4", "IPV6", "DESCRIPTION", "USED BY", "STATE"]
    cells = [c.strip() for c in lines[5].split("|")[1:-1]]
    assert cells == ["lxmgrbr0", "bridge", "YES", "10.99.0.1/24", "none", "Default bridge", "2",
                     "CREATED"]
    assert result.output.index("eth0") < result.output.index("lxmgrbr0")


def test_list_json_yaml_csv(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/networks")] = [BR0]
    assert json.loads(run("network", "list", "--format", "json").output) == [BR0]
    assert yaml.safe_load(run("network", "list", "-f", "yaml").output) == [BR0]
    assert run("network", "list", "-f", "csv").output == (
        "lxmgrbr0,bridge,YES,10.99.0.1/24,none,Default bridge,2,CREATED\n")


def test_show(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = BR0
    shown = yaml.safe_load(run("network", "show", "lxmgrbr0").output)
    assert shown == BR0
    assert list(shown)[:3] == ["name", "description", "type"]


def test_create_with_keys_type_and_description(run: Run, fake: FakeClient) -> None:
    result = run("network", "create", "testbr0", "ipv4.address=10.98.0.1/24", "ipv4.nat=false",
                 "--description", "Test", input="")
    assert result.exit_code == 0, result.output
    assert result.output == "Network testbr0 created\n"
    assert fake.mutations() == [("POST", "/1.0/networks")]
    assert fake.last("POST", "/1.0/networks").body == {
        "name": "testbr0", "description": "Test", "type": "bridge",
        "config": {"ipv4.address": "10.98.0.1/24", "ipv4.nat": "false"}}


def test_create_from_stdin_yaml_args_win(run: Run, fake: FakeClient) -> None:
    text = "description: From yaml\nconfig:\n  ipv4.nat: false\n  bridge.mtu: 1400\n"
    result = run("network", "create", "testbr0", "bridge.mtu=1500", input=text)
    assert result.exit_code == 0, result.output
    assert fake.last("POST", "/1.0/networks").body == {
        "name": "testbr0", "description": "From yaml", "type": "bridge",
        "config": {"ipv4.nat": "false", "bridge.mtu": "1500"}}


def test_create_rejects_a_bare_word(run: Run, fake: FakeClient) -> None:
    result = run("network", "create", "testbr0", "nat", input="")
    assert result.exit_code == 1
    assert result.output == "Error: Invalid config 'nat': expected KEY=VALUE\n"
    assert fake.calls == []


def test_set_patches_config(run: Run, fake: FakeClient) -> None:
    assert run("network", "set", "lxmgrbr0", "dns.domain=test", "ipv4.dhcp=true").exit_code == 0
    assert fake.last("PATCH", PATH).body == {"config": {"dns.domain": "test",
                                                        "ipv4.dhcp": "true"}}
    assert run("network", "set", "lxmgrbr0", "bridge.mtu", "1400").exit_code == 0
    assert fake.last("PATCH", PATH).body == {"config": {"bridge.mtu": "1400"}}


def test_unset_puts_description_and_config(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = BR0
    assert run("network", "unset", "lxmgrbr0", "ipv4.nat").exit_code == 0
    put = fake.last("PUT", PATH)
    assert put.body == {"description": "Default bridge",
                        "config": {"ipv4.address": "10.99.0.1/24", "ipv6.address": "none"}}
    assert put.headers == {"If-Match": "etag-1"}
    missing = run("network", "unset", "lxmgrbr0", "nope")
    assert missing.exit_code == 1
    assert missing.output == "Error: Can't unset key 'nope', it's not currently set\n"


def test_get(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = BR0
    assert run("network", "get", "lxmgrbr0", "ipv4.address").output == "10.99.0.1/24\n"
    assert run("network", "get", "lxmgrbr0", "dns.domain").output == "\n"


def test_edit_from_stdin_writes_only_description_and_config(run: Run,
                                                            fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = BR0
    text = "name: other\ntype: bridge\ndescription: New\nconfig:\n  ipv4.nat: false\n"
    result = run("network", "edit", "lxmgrbr0", input=text)
    assert result.exit_code == 0, result.output
    put = fake.last("PUT", PATH)
    assert put.body == {"description": "New", "config": {"ipv4.nat": "false"}}
    assert put.headers == {"If-Match": "etag-1"}
    bad = run("network", "edit", "lxmgrbr0", input="config: [\n")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert bad.output.startswith("Error: Invalid YAML for network 'lxmgrbr0'")
    wrong = run("network", "edit", "lxmgrbr0", input="config: [a, b]\n")
    assert wrong.exit_code == 1 and "expected a mapping" in wrong.output


def test_delete_and_in_use_conflict(run: Run, fake: FakeClient) -> None:
    assert run("network", "delete", "testbr0").output == "Network testbr0 deleted\n"
    assert fake.mutations() == [("DELETE", "/1.0/networks/testbr0")]
    fake.answers[("DELETE", PATH)] = errors.Conflict("The network is currently in use")
    result = run("network", "delete", "lxmgrbr0")
    assert result.exit_code == 1
    assert result.output == "Error: The network is currently in use\n"


def test_rename_and_not_supported(run: Run, fake: FakeClient) -> None:
    result = run("network", "rename", "testbr0", "labbr0")
    assert result.exit_code == 0 and result.output == "Network testbr0 renamed to labbr0\n"
    assert fake.last("POST", "/1.0/networks/testbr0").body == {"name": "labbr0"}
    fake.answers[("POST", PATH)] = errors.NotSupported("Renaming a network is not supported")
    refused = run("network", "rename", "lxmgrbr0", "x")
    assert refused.exit_code == 1
    assert refused.output == "Error: Renaming a network is not supported\n"


def test_list_leases(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", f"{PATH}/leases")] = [
        {"hostname": "web1", "hwaddr": "00:16:3e:00:00:01", "address": "10.99.0.10",
         "type": "dynamic", "location": "none", "project": "default"},
        {"hostname": "db1", "hwaddr": "00:16:3e:00:00:02", "address": "10.99.0.2",
         "type": "static", "location": "none", "project": "default"}]
    result = run("network", "list-leases", "lxmgrbr0")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"]
    assert "| web1     | 00:16:3e:00:00:01 | 10.99.0.10 | DYNAMIC |" in lines
    csv = run("network", "list-leases", "lxmgrbr0", "-f", "csv").output
    assert csv.splitlines()[1] == "db1,00:16:3e:00:00:02,10.99.0.2,STATIC"


def test_info(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", f"{PATH}/state")] = {
        "addresses": [{"family": "inet", "address": "10.99.0.1", "netmask": "24",
                       "scope": "global"}],
        "counters": {"bytes_received": 2048, "bytes_sent": 100, "packets_received": 7,
                     "packets_sent": 3},
        "hwaddr": "00:16:3e:aa:bb:cc", "mtu": 1500, "state": "up", "type": "broadcast"}
    result = run("network", "info", "lxmgrbr0")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for line in ("Name: lxmgrbr0", "MAC address: 00:16:3e:aa:bb:cc", "MTU: 1500", "State: up",
                 "Type: broadcast", "  inet\t10.99.0.1/24 (global)", "  Bytes received: 2.00KiB",
                 "  Bytes sent: 100B", "  Packets received: 7", "  Packets sent: 3"):
        assert line in lines


def test_not_found_is_one_line(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/networks/nope")] = errors.NotFound("Network 'nope' not found")
    for args in (["show", "nope"], ["get", "nope", "k"], ["unset", "nope", "k"]):
        result = run("network", *args)
        assert result.exit_code == 1
        assert result.output == "Error: Network 'nope' not found\n"
