"""lxmgr.model.project: LXD 5.0's project names, config registry and feature rules."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model import project


@pytest.mark.parametrize(("name", "message"), [
    ("", "No name provided"),
    ("a/b", "Project names may not contain slashes"),
    ("a b", "Project names may not contain spaces"),
    ("a'b", "Project names may not contain quotes"),
    ('a"b', "Project names may not contain quotes"),
    ("*", "Reserved project name"),
    ("..", "Invalid project name '..'"),
])
def test_invalid_names(name: str, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        project.validate_name(name)
    assert str(err.value) == message


@pytest.mark.parametrize("name", ["web", "team-a", "Prod.2", "a_b"])
def test_valid_names(name: str) -> None:
    project.validate_name(name)


def test_create_config_defaults() -> None:
    assert project.create_config({}) == {"features.images": "true",
                                         "features.profiles": "true",
                                         "features.storage.volumes": "true"}
    assert project.create_config({"features.images": "false", "features.networks": "true",
                                  "user.team": "a"}) == {
        "features.images": "false", "features.profiles": "true",
        "features.storage.volumes": "true", "features.networks": "true", "user.team": "a"}


def test_not_implemented_keys_are_refused_by_name() -> None:
    with pytest.raises(NotSupported) as err:
        project.validate_config({"limits.virtual-machines": "1", "restricted.devices.pci":
                                 "block", "features.images": "true"})
    assert str(err.value) == ("Project configuration keys not supported yet: "
                              "limits.virtual-machines, restricted.devices.pci")
    for key in ("limits.networks", "restricted.backups", "restricted.snapshots",
                "restricted.virtual-machines.lowlevel", "restricted.devices.proxy"):
        with pytest.raises(NotSupported, match=key):
            project.validate_config({key: "1"})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("limits.cpu", "0-3", "CPUs can't be pinned if project limits are used"),
    ("limits.memory", "50%", "Value can't be a percentage"),
    ("limits.instances", "-1", "expected a number of instances"),
    ("restricted.devices.nic", "maybe", "Invalid project configuration key"),
    ("restricted", "yes please", "Invalid project configuration key"),
])
def test_limit_values_checked(key: str, value: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        project.validate_config({key: value})
    project.validate_config({"limits.cpu": "4", "limits.memory": "2GiB", "restricted": "true",
                            "restricted.devices.nic": "allow", "limits.instances": "3"})


def test_invalid_keys_and_values() -> None:
    with pytest.raises(InvalidConfig) as err:
        project.validate_config({"features.image": "true"})
    assert str(err.value) == ("Invalid project configuration key 'features.image': "
                              "did you mean 'features.images'?")
    with pytest.raises(InvalidConfig, match="'features.networks' value"):
        project.validate_config({"features.networks": "maybe"})
    with pytest.raises(InvalidConfig, match="expected a string"):
        project.validate_config({"features.networks": True})  # type: ignore[dict-item]
    project.validate_config({"features.networks": "", "user.anything": "x y"})


def test_feature_changes() -> None:
    old = project.default_config()
    with pytest.raises(InvalidConfig, match="You can't change the features of the default"):
        project.check_update("default", old, {**old, "features.images": "false"}, True)
    project.check_update("default", old, {**old, "user.a": "b"}, False)
    with pytest.raises(InvalidConfig, match="Features can only be changed on empty projects"):
        project.check_update("web", {}, {"features.images": "true"}, False)
    project.check_update("web", {}, {"features.images": "true"}, True)
    with pytest.raises(NotSupported):
        project.check_update("web", {}, {"limits.virtual-machines": "2"}, True)


def test_has_feature() -> None:
    assert project.has_feature({"features.images": "true"}, "features.images")
    assert not project.has_feature({"features.images": "false"}, "features.images")
    assert not project.has_feature({}, "features.networks")


def test_storage_names() -> None:
    assert project.storage_name("default", "web1") == "web1"
    assert project.storage_name("", "web1") == "web1"
    assert project.storage_name("team_a", "web1") == "team_a_web1"
    assert project.storage_parts("team_a_web1") == ("team_a", "web1")
    assert project.storage_parts("web1") == ("default", "web1")


def test_owner_follows_features() -> None:
    config = {"features.profiles": "true", "features.images": "false"}
    assert project.owner("web", config, "features.profiles") == "web"
    assert project.owner("web", config, "features.images") == "default"
    assert project.owner("web", config, "features.networks") == "default"
    assert project.owner("default", {}, "features.networks") == "default"
    with pytest.raises(ValueError):
        project.owner("web", config, "features.nosuch")


def test_profile_keys() -> None:
    assert project.profile_key("default", "small") == "small"
    assert project.profile_key("web", "small") == "web/small"
    assert project.profile_parts("web/small") == ("web", "small")
    assert project.profile_parts("small") == ("default", "small")


@pytest.mark.parametrize(("stored", "dns"), [
    ("web1", "web1"), ("team_web1", "web1.team"), ("a.b_web1", None), ("t_x_web1", None),
])
def test_dns_names(stored: str, dns: str | None) -> None:
    """LXD's project.DNS: NAME.PROJECT outside default; None when that is no DNS name."""
    assert project.dns_name(stored) == dns


def test_urls_and_messages() -> None:
    assert project.instance_url("web1") == "/1.0/instances/web1"
    assert project.instance_url("team_web1", "/snapshots/s1") == \
        "/1.0/instances/web1/snapshots/s1?project=team"
    assert project.url_suffix("a.b") == "?project=a.b"
    assert project.shown("team", "Instance 'team_web1' not found") == \
        "Instance 'web1' not found"
    assert project.shown("team", "Profile 'team/small' not found") == \
        "Profile 'small' not found"
    assert project.shown("default", "Instance 'team_web1'") == "Instance 'team_web1'"


@pytest.mark.parametrize("name", ["a b", "é", "x" * 64, "-a", "a\nb", "a+b"])
def test_names_that_cannot_be_paths_refused(name: str) -> None:
    with pytest.raises(InvalidConfig):
        project.validate_name(name)
