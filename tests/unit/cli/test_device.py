"""`lxmgr config device ...` and `lxmgr profile device ...`: GET then a full PUT with If-Match."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import Result

from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

ETH0 = {"type": "nic", "network": "lxmgrbr0", "name": "eth0"}
ROOT = {"type": "disk", "path": "/", "pool": "default"}
WEB1: dict[str, Any] = {
    "name": "web1", "status": "Running", "type": "container", "architecture": "x86_64",
    "description": "", "ephemeral": False, "stateful": False, "profiles": ["default"],
    "config": {"limits.cpu": "2"}, "devices": {"data": {"type": "disk", "source": "/srv",
                                                         "path": "/data"}},
    "expanded_config": {"limits.cpu": "2"},
    "expanded_devices": {"root": ROOT, "eth0": ETH0,
                         "data": {"type": "disk", "source": "/srv", "path": "/data"}},
}
WEB: dict[str, Any] = {"name": "web", "description": "Web", "config": {"limits.cpu": "1"},
                       "devices": {"eth0": ETH0}, "used_by": ["/1.0/instances/web1"]}
INST = "/1.0/instances/web1"
PROF = "/1.0/profiles/web"
INSTANCE_PUT = {"architecture", "config", "devices", "ephemeral", "profiles", "stateful",
                "description"}


@pytest.fixture(autouse=True)
def _objects(fake: FakeClient) -> None:
    fake.answers[("GET", INST)] = WEB1
    fake.answers[("GET", PROF)] = WEB


def _put(fake: FakeClient, path: str) -> dict[str, Any]:
    call = fake.last("PUT", path)
    assert call.headers == {"If-Match": "etag-1"}
    assert fake.mutations() == [("PUT", path)]
    return dict(call.body)


def test_config_device_add_nic(run: Run, fake: FakeClient) -> None:
    result = run("config", "device", "add", "web1", "eth1", "nic", "network=lxmgrbr0",
                 "name=eth1")
    assert result.exit_code == 0, result.output
    assert result.output == "Device eth1 added to web1\n"
    body = _put(fake, INST)
    assert set(body) == INSTANCE_PUT
    assert body["devices"] == {**WEB1["devices"],
                               "eth1": {"type": "nic", "network": "lxmgrbr0", "name": "eth1"}}
    assert body["config"] == WEB1["config"] and body["profiles"] == ["default"]


def test_profile_device_add_puts_profile_fields(run: Run, fake: FakeClient) -> None:
    result = run("profile", "device", "add", "web", "http", "proxy",
                 "listen=tcp:0.0.0.0:8080", "connect=tcp:127.0.0.1:80")
    assert result.exit_code == 0, result.output
    assert _put(fake, PROF) == {
        "description": "Web", "config": {"limits.cpu": "1"},
        "devices": {"eth0": ETH0, "http": {"type": "proxy", "listen": "tcp:0.0.0.0:8080",
                                           "connect": "tcp:127.0.0.1:80"}}}


@pytest.mark.parametrize(("args", "message"), [
    (["add", "web1", "data", "disk", "source=/x", "path=/x"],
     "Device 'data' already exists on instance 'web1'"),
    (["add", "web1", "eth1", "nic", "bogus=1"],
     "Invalid device 'eth1': unknown key 'bogus' for type 'nic' (on instance 'web1')"),
    (["add", "web1", "eth1", "nic", "network"], "Invalid device key 'network': expected "
                                                "KEY=VALUE"),
    (["add", "web1", "x", "tape"], "Invalid device 'x': unknown type 'tape'"),
    (["remove", "web1", "nope"], "Device 'nope' doesn't exist on instance 'web1'"),
    (["remove", "web1", "eth0"], "Device 'eth0' comes from a profile of instance 'web1': "
                                 "override it (lxmgr config device override web1 eth0) or "
                                 "change the profile"),
    (["set", "web1", "nope", "mtu=1400"], "Device 'nope' doesn't exist on instance 'web1'"),
    (["set", "web1", "eth0", "mtu=huge"], "Invalid device 'eth0' key 'mtu'"),
    (["unset", "web1", "data", "readonly"], "Can't unset key 'readonly' of device 'data', "
                                            "it's not set"),
    (["unset", "web1", "data", "type"], "Can't unset key 'type' of device 'data', it's the "
                                        "device type"),
    (["override", "web1", "data"], "Device 'data' is already local to instance 'web1'"),
    (["override", "web1", "nope"], "Device 'nope' doesn't exist on instance 'web1'"),
])
def test_config_device_errors_are_one_line_and_change_nothing(
        run: Run, fake: FakeClient, args: list[str], message: str) -> None:
    result = run("config", "device", *args)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {message}") and result.output.count("\n") == 1
    assert fake.mutations() == []


def test_config_device_remove(run: Run, fake: FakeClient) -> None:
    result = run("config", "device", "remove", "web1", "data")
    assert result.exit_code == 0 and result.output == "Device data removed from web1\n"
    body = _put(fake, INST)
    assert body["devices"] == {} and set(body) == INSTANCE_PUT  # a PUT: PATCH can't remove


def test_profile_device_remove(run: Run, fake: FakeClient) -> None:
    assert run("profile", "device", "remove", "web", "eth0").exit_code == 0
    assert _put(fake, PROF)["devices"] == {}
    missing = run("profile", "device", "remove", "web", "nope")
    assert missing.output == "Error: Device 'nope' doesn't exist on profile 'web'\n"


def test_set_local_device(run: Run, fake: FakeClient) -> None:
    assert run("config", "device", "set", "web1", "data", "readonly=true").exit_code == 0
    assert _put(fake, INST)["devices"]["data"] == {"type": "disk", "source": "/srv",
                                                   "path": "/data", "readonly": "true"}


def test_set_profile_device_overrides_it_on_the_instance(run: Run, fake: FakeClient) -> None:
    result = run("config", "device", "set", "web1", "eth0", "ipv4.address", "10.99.0.10")
    assert result.exit_code == 0, result.output
    devices = _put(fake, INST)["devices"]
    assert devices["eth0"] == {**ETH0, "ipv4.address": "10.99.0.10"}
    assert "root" not in devices  # only the overridden device becomes local


def test_override(run: Run, fake: FakeClient) -> None:
    result = run("config", "device", "override", "web1", "eth0", "mtu=1400")
    assert result.exit_code == 0 and result.output == "Device eth0 overridden for web1\n"
    assert _put(fake, INST)["devices"]["eth0"] == {**ETH0, "mtu": "1400"}


def test_profiles_have_no_override(run: Run) -> None:
    result = run("profile", "device", "override", "web", "eth0")
    assert result.exit_code == 2 and "No such command 'override'" in result.output


def test_unset(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PROF)] = {**WEB, "devices": {"eth0": {**ETH0, "mtu": "1400"}}}
    assert run("profile", "device", "unset", "web", "eth0", "mtu").exit_code == 0
    assert _put(fake, PROF)["devices"] == {"eth0": ETH0}


def test_get_list_show(run: Run, fake: FakeClient) -> None:
    assert run("config", "device", "get", "web1", "data", "path").output == "/data\n"
    assert run("config", "device", "get", "web1", "eth0", "network").output == "lxmgrbr0\n"
    assert run("config", "device", "get", "web1", "data", "readonly").output == "\n"
    assert run("config", "device", "list", "web1").output == "data\n"
    assert run("profile", "device", "list", "web").output == "eth0\n"
    assert yaml.safe_load(run("profile", "device", "show", "web").output) == {"eth0": ETH0}
    assert yaml.safe_load(run("config", "device", "show", "web1").output) == WEB1["devices"]
    assert fake.mutations() == []


def test_help_names_the_owner(run: Run) -> None:
    config_help = run("config", "device", "add", "--help").output
    assert "INSTANCE DEVICE TYPE" in config_help
    assert "lxmgr config device add web1 eth1 nic network=lxmgrbr0 name=eth1" in config_help
    profile_help = run("profile", "device", "add", "--help").output
    assert "PROFILE DEVICE TYPE" in profile_help and "lxmgr profile device add web " in \
        profile_help
