"""The config key registry, validate_config, expand and restart detection."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.config import (
    KEYS,
    PREFIX_KEYS,
    changed_keys,
    config_value,
    expand,
    is_live,
    lookup_key,
    restart_required,
    to_config_value,
    validate_config,
    validate_key,
)
from lxmgr.model.profile import Profile

# key -> (a good value, a bad value); every registered key must be listed here.
KEY_CASES = {
    "boot.autostart": ("true", "sometimes"),
    "boot.autostart.delay": ("5", "5s"),
    "boot.autostart.priority": ("-3", "high"),
    "boot.host_shutdown_timeout": ("60", "1m"),
    "boot.stop.priority": ("2", "x"),
    "cloud-init.user-data": ("#cloud-config\npackages: [vim]\n", None),
    "cloud-init.vendor-data": ("#cloud-config\n", None),
    "cloud-init.network-config": ("version: 2\n", None),
    "limits.cpu": ("2", "0"),
    "limits.cpu.allowance": ("25ms/100ms", "fifty"),
    "limits.cpu.priority": ("5", "11"),
    "limits.memory": ("512MiB", "0"),
    "limits.memory.enforce": ("soft", "medium"),
    "limits.memory.swap": ("false", "never"),
    "limits.memory.swap.priority": ("0", "-1"),
    "limits.processes": ("500", "0"),
    "linux.kernel_modules": ("overlay,br_netfilter", "-r"),
    "raw.idmap": ("both 1000 1000\nuid 50-60 500-510\n", "both 0 0"),
    "security.privileged": ("false", "root"),
    "security.nesting": ("true", "deep"),
    "security.idmap.isolated": ("true", "yes please"),
    "security.idmap.base": ("1000000", "-1"),
    "security.idmap.size": ("65536", str(2**32)),
    "security.protection.delete": ("true", "x"),
    "security.syscalls.deny_default": ("false", "x"),
    "security.syscalls.deny_compat": ("true", "x"),
    "security.syscalls.deny": ("keyctl\nadd_key", "not a syscall"),
    "snapshots.schedule": ("@daily", "daily"),
    "snapshots.schedule.stopped": ("true", "x"),
    "snapshots.pattern": ("auto%d", "a/b"),
    "snapshots.expiry": ("2w 3d", "fortnight"),
}


def test_every_registered_key_is_covered() -> None:
    assert set(KEYS) == set(KEY_CASES)


def test_registry_entries_are_documented_and_defaults_valid() -> None:
    for key in [*KEYS.values(), *PREFIX_KEYS.values()]:
        assert key.doc and not key.doc.endswith(".")
        if key.default is not None:
            key.validator(key.default)


@pytest.mark.parametrize("key", sorted(KEY_CASES))
def test_key_accepts_good_value_and_empty(key: str) -> None:
    validate_key(key, KEY_CASES[key][0])
    validate_key(key, "")


@pytest.mark.parametrize("key", sorted(k for k, (_, bad) in KEY_CASES.items() if bad is not None))
def test_key_rejects_bad_value_naming_key(key: str) -> None:
    bad = KEY_CASES[key][1]
    assert bad is not None
    with pytest.raises(InvalidConfig, match=rf"^Invalid config key '{key}': "):
        validate_key(key, bad)


def test_unknown_key_is_named() -> None:
    with pytest.raises(InvalidConfig, match=r"^Unknown config key 'limits.cpus': did you "
                                            r"mean 'limits.cpu'\?$"):
        validate_config({"limits.cpus": "2"})


@pytest.mark.parametrize(("key", "meant"), [("limits.memroy", "limits.memory"),
                                            ("securty.nesting", "security.nesting"),
                                            ("enviroment.HTTP_PROXY", "environment.HTTP_PROXY"),
                                            ("usr.note", "user.note")])
def test_unknown_key_suggests_a_close_one(key: str, meant: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        validate_key(key, "1")
    assert str(err.value) == f"Unknown config key '{key}': did you mean '{meant}'?"


@pytest.mark.parametrize("key", ["foo.bar", "limits.foo", "raw.lxc", "volatile", "limits"])
def test_unknown_key_far_from_any_has_no_suggestion(key: str) -> None:
    with pytest.raises(InvalidConfig, match=rf"^Unknown config key '{key}'$"):
        validate_key(key, "1")


@pytest.mark.parametrize("key", ["user.", "environment.", "image.", "limits", "raw.lxc"])
def test_bare_prefix_or_unsupported_namespace_is_unknown(key: str) -> None:
    with pytest.raises(InvalidConfig, match="Unknown config key"):
        validate_key(key, "x")


@pytest.mark.parametrize(
    "key", ["user.anything.at.all", "image.os", "environment.HTTP_PROXY", "volatile.base_image"]
)
def test_namespaces_accept_free_form_values(key: str) -> None:
    validate_key(key, "free form: value with spaces")


@pytest.mark.parametrize(
    "value", ["a\nb", "line\r", "nul\0byte", "x\nlxc.apparmor.profile=unconfined"]
)
def test_environment_rejects_newline_and_nul(value: str) -> None:
    # Regression: a newline in an environment value must not reach generated config.
    with pytest.raises(InvalidConfig, match=r"^Invalid config key 'environment.FOO': "):
        validate_config({"environment.FOO": value})


@pytest.mark.parametrize("key", ["environment.A=B", "environment.A\nB"])
def test_environment_rejects_bad_variable_names(key: str) -> None:
    with pytest.raises(InvalidConfig, match="environment variable name"):
        validate_key(key, "x")


def test_nul_rejected_in_any_value() -> None:
    with pytest.raises(InvalidConfig, match="NUL"):
        validate_key("user.note", "a\0b")


def test_volatile_needs_flag() -> None:
    with pytest.raises(InvalidConfig, match=r"^Invalid config key 'volatile.uuid': .*lxmgr only"):
        validate_config({"volatile.uuid": "abc"})
    allowed = validate_config({"volatile.uuid": "abc"}, allow_volatile=True)
    assert allowed == {"volatile.uuid": "abc"}


def test_validate_config_normalises_to_strings() -> None:
    raw: dict[str, object] = {"security.nesting": True, "limits.processes": 500,
                              "user.ratio": 0.5, "boot.autostart": None, "user.x": "y"}
    assert validate_config(raw) == {"security.nesting": "true", "limits.processes": "500",
                                    "user.ratio": "0.5", "boot.autostart": "", "user.x": "y"}


def test_validate_config_rejects_structured_values() -> None:
    with pytest.raises(InvalidConfig, match=r"^Invalid config key 'user.list': .*list"):
        validate_config({"user.list": [1, 2]})


def test_to_config_value() -> None:
    assert to_config_value(False) == "false"
    assert to_config_value(2) == "2"
    assert to_config_value("s") == "s"
    assert to_config_value(None) == ""


def test_lookup_and_defaults() -> None:
    assert lookup_key("environment.PATH").name == "environment.*"
    assert config_value({}, "limits.memory.enforce") == "hard"
    assert config_value({"limits.memory.enforce": "soft"}, "limits.memory.enforce") == "soft"
    assert config_value({}, "limits.memory") is None


def test_live_flags() -> None:
    assert all(KEYS[k].live for k in KEYS if k.startswith(("limits.", "boot.")))
    assert not any(KEYS[k].live for k in KEYS
                   if k.startswith("security.") and k != "security.protection.delete")
    assert is_live("user.foo")
    assert not is_live("no.such.key")


def test_expand_order_profiles_then_local() -> None:
    a = Profile("a", config={"limits.cpu": "1", "limits.memory": "1GiB", "user.a": "a"},
                devices={"root": {"type": "disk", "path": "/", "pool": "default"},
                         "eth0": {"type": "nic", "network": "lxmgrbr0"}})
    b = Profile("b", config={"limits.cpu": "2", "user.b": "b"},
                devices={"root": {"type": "disk", "path": "/", "pool": "fast"}})
    config, devices = expand(
        [a, b], {"limits.memory": "2GiB"}, {"eth0": {"type": "none"}}
    )
    assert config == {"limits.cpu": "2", "limits.memory": "2GiB", "user.a": "a", "user.b": "b"}
    # Devices replace whole by name: b's root has no leftover keys from a's.
    assert devices == {"root": {"type": "disk", "path": "/", "pool": "fast"},
                       "eth0": {"type": "none"}}
    config2, _ = expand([b, a], {}, {})
    assert config2["limits.cpu"] == "1"


def test_expand_does_not_alias_inputs() -> None:
    a = Profile("a", devices={"root": {"type": "disk", "path": "/", "pool": "default"}})
    _, devices = expand([a], {}, {})
    devices["root"]["pool"] = "changed"
    assert a.devices["root"]["pool"] == "default"


def test_changed_keys() -> None:
    old = {"a": "1", "b": "2", "c": "3"}
    new = {"a": "1", "b": "20", "d": "4"}
    assert changed_keys(old, new) == ["b", "c", "d"]
    assert changed_keys(old, old) == []


def test_restart_required_lists_only_non_live_changes() -> None:
    old = {"limits.cpu": "1", "security.nesting": "false", "boot.autostart": "true"}
    new = {"limits.cpu": "2", "security.nesting": "true", "security.privileged": "true",
           "user.x": "y"}
    assert restart_required(old, new) == ["security.nesting", "security.privileged"]


def test_restart_required_treats_unset_as_default() -> None:
    assert restart_required({}, {"security.privileged": "false"}) == []
    assert restart_required({"security.syscalls.deny_default": "true"}, {}) == []
