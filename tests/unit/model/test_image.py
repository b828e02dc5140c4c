"""Image template rules: parsing LXD metadata.yaml `templates:`, validation, trigger filtering."""

from __future__ import annotations

from typing import Any

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.image import (
    TemplateContext,
    TemplateRule,
    parse_rule,
    parse_templates,
    rules_for,
)

# What distrobuilder writes for an lxc-ci "cloud" variant (generators/hostname.go, hosts.go,
# cloud-init.go), as yaml.safe_load returns it.
LXC_CI_TEMPLATES: dict[str, Any] = {
    "/etc/hostname": {"when": ["create", "copy"], "create_only": False,
                      "template": "hostname.tpl", "properties": {}},
    "/etc/hosts": {"when": ["create", "copy"], "create_only": False,
                   "template": "hosts.tpl", "properties": {}},
    "/var/lib/cloud/seed/nocloud-net/meta-data": {
        "when": ["create", "copy"], "create_only": False, "template": "cloud-init-meta.tpl",
        "properties": {"default": "#cloud-config\n{}\n"}},
    "/var/lib/cloud/seed/nocloud-net/user-data": {
        "when": ["create", "copy"], "template": "cloud-init-user.tpl",
        "properties": {"default": "#cloud-config\n{}"}},
    "/etc/machine-id": {"when": ["start"], "create_only": True, "template": "machine-id.tpl"},
}


def test_parse_lxc_ci_templates_in_order() -> None:
    rules = parse_templates(LXC_CI_TEMPLATES)
    assert [r.path for r in rules] == list(LXC_CI_TEMPLATES)
    assert rules[0] == TemplateRule("/etc/hostname", ("create", "copy"), "hostname.tpl")
    assert rules[2].properties == {"default": "#cloud-config\n{}\n"}
    assert rules[4].create_only and rules[4].when == ("start",)


def test_no_templates_section() -> None:
    assert parse_templates(None) == []
    assert parse_templates({}) == []


def test_rules_for_filters_by_trigger() -> None:
    rules = parse_templates(LXC_CI_TEMPLATES)
    assert [r.path for r in rules_for(rules, "start")] == ["/etc/machine-id"]
    assert len(rules_for(rules, "copy")) == 4
    assert rules_for(rules, "rename") == []


def test_rules_for_unknown_trigger() -> None:
    with pytest.raises(InvalidConfig, match="Invalid template trigger 'boot'"):
        rules_for([], "boot")


def test_missing_when_never_fires_and_duplicates_collapse() -> None:
    rule = parse_rule("/a", {"template": "a.tpl"})
    assert rule.when == ()
    assert parse_rule("/a", {"template": "a", "when": ["copy", "copy"]}).when == ("copy",)


def test_properties_scalars_become_strings() -> None:
    rule = parse_rule("/a", {"template": "a", "properties": {"on": True, "n": 3, "s": "x"}})
    assert rule.properties == {"on": "true", "n": "3", "s": "x"}


def test_permissions_extension() -> None:
    rule = parse_rule("/a", {"template": "a", "uid": "1000", "gid": 5, "mode": "600"})
    assert (rule.uid, rule.gid, rule.mode) == (1000, 5, 0o600)
    assert parse_rule("/a", {"template": "a", "mode": "0640"}).mode == 0o640
    assert parse_rule("/a", {"template": "a", "uid": ""}).uid is None


BAD_PATHS = ["etc/hostname", "/", "/etc/../shadow", "/../etc", "/etc//hosts", "/etc/hosts/",
             "/etc/./hosts", "/etc/\0x", ".."]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_target_paths(path: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid image template path .*absolute"):
        parse_templates({path: {"template": "a.tpl", "when": ["create"]}})


def test_path_must_be_a_string() -> None:
    with pytest.raises(InvalidConfig, match="expected a string"):
        parse_templates({1: {"template": "a"}})


BAD_ENTRIES: list[tuple[Any, str]] = [
    ({"template": "../x"}, r"field 'template': '../x' must be a plain file name"),
    ({"template": "a/b.tpl"}, r"field 'template': 'a/b.tpl' must be a plain file name"),
    ({"template": ".."}, r"field 'template'"),
    ({"template": ""}, r"field 'template': a template file name is required"),
    ({}, r"field 'template': a template file name is required"),
    ({"template": "a", "when": "create"}, r"field 'when': expected a list"),
    ({"template": "a", "when": ["boot"]}, r"field 'when': unknown trigger 'boot'"),
    ({"template": "a", "when": [1]}, r"field 'when': expected a list"),
    ({"template": "a", "create_only": "yes"}, r"field 'create_only': expected true or false"),
    ({"template": "a", "properties": ["x"]}, r"field 'properties': expected a mapping"),
    ({"template": "a", "properties": {"k": {"x": 1}}}, r"field 'properties.k': expected a"),
    ({"template": "a", "properties": {1: "x"}}, r"field 'properties': key 1 is not a string"),
    ({"template": "a", "uid": "-1"}, r"field 'uid': '-1' is not a container id"),
    ({"template": "a", "gid": "65536"}, r"field 'gid': '65536' is not a container id"),
    ({"template": "a", "mode": "999"}, r"field 'mode': '999' is not an octal file mode"),
    ({"template": "a", "mode": "7777"}, r"field 'mode'"),
    ({"template": "a", "mode": 644}, r"field 'mode': expected a quoted octal string"),
    ({"template": "a", "owner": "root"}, r"unknown field 'owner'$"),
    ({"template": "a", "crate_only": True}, r"unknown field 'crate_only': did you mean "
                                            r"'create_only'\?$"),
    ("hostname.tpl", r"expected a mapping"),
]


@pytest.mark.parametrize(("entry", "message"), BAD_ENTRIES)
def test_bad_entries_name_the_path_and_field(entry: Any, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message) as info:
        parse_templates({"/etc/hostname": entry})
    assert "'/etc/hostname'" in str(info.value)


def test_templates_must_be_a_mapping() -> None:
    with pytest.raises(InvalidConfig, match="'templates': expected a mapping"):
        parse_templates(["/etc/hostname"])


def test_context_meta_is_strings_like_lxd() -> None:
    ctx = TemplateContext("web1", "x86_64", privileged=True)
    assert ctx.instance_meta() == {"name": "web1", "type": "container",
                                   "architecture": "x86_64", "privileged": "true",
                                   "ephemeral": "false"}
